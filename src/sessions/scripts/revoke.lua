-- Revokes one session, if it belongs to the given user (or to anyone, when ARGV[3] is empty).
-- KEYS[1] session hash
-- ARGV: key prefix, session id, expected user id or ''
-- Returns 1 when a live session was revoked, else 0.
local uid = redis.call('HGET', KEYS[1], 'uid')
if not uid or (ARGV[3] ~= '' and uid ~= ARGV[3]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'user:' .. uid .. ':sessions', ARGV[2])
return 1
