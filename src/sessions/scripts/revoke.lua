-- Revokes one session of a user.
-- KEYS[1] session hash, KEYS[2] the user's session index (one hash slot)
-- ARGV: session id, user id
-- Returns 1 when a live session was revoked, else 0.
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
