-- Revokes one session of a user.
-- KEYS[1] session hash, KEYS[2] the user's session index (one hash slot)
-- ARGV: session id
-- Returns 1 when a live session was revoked, else 0.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
