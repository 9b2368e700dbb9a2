-- Revokes every session of a user; with an epoch lifetime, also moves the
-- user's session epoch first, so that no session stamped with the old one
-- (a sign-in in flight) can be created or refreshed any more.
-- KEYS[1] the user's session index, KEYS[2] the user's session epoch
-- ARGV[1] the user's session key prefix (its session hashes share the
-- index's hash slot), ARGV[2] how long the new epoch is kept (ms), or 0 to
-- leave the epoch alone, ARGV[3] a session to keep, or ''. A kept session
-- stays only if it was live (of the current epoch): it is re-stamped with
-- the new epoch; a dead one is never brought back.
-- Returns the number of sessions revoked.
local keep = ARGV[3]
if keep ~= '' then
  local fields = redis.call('HMGET', ARGV[1] .. keep, 'g', 'e')
  local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
  if not fields[1] or tonumber(fields[2] or '0') ~= epoch then
    keep = ''
  end
end
if tonumber(ARGV[2]) > 0 then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  if keep ~= '' then
    redis.call('HSET', ARGV[1] .. keep, 'e', epoch)
  end
end
local revoked = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= keep then
    revoked = revoked + redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
if keep == '' then
  redis.call('DEL', KEYS[1])
end
return revoked
