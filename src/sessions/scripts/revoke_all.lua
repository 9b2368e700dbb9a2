-- Revokes every session of a user; with an epoch lifetime, also moves the
-- user's session epoch first, so that no session stamped with the old one
-- (a sign-in in flight) can be created or refreshed any more.
-- KEYS[1] the user's session index, KEYS[2] the user's session epoch
-- ARGV[1] the user's session key prefix (its session hashes share the
-- index's hash slot), ARGV[2] how long the new epoch is kept (ms), or 0 to
-- leave the epoch alone.
-- Returns the number of sessions revoked.
if tonumber(ARGV[2]) > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local revoked = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  revoked = revoked + redis.call('DEL', ARGV[1] .. sid)
end
redis.call('DEL', KEYS[1])
return revoked
