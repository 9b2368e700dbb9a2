-- Creates a refresh session and indexes it under its user.
-- KEYS[1] session hash, KEYS[2] the user's session index (sorted set by expiry)
-- ARGV: session id, user id, idle timeout (ms), absolute lifetime (ms), user agent, ip
-- Returns the ms until the session's idle expiry.
-- The time comes from Redis, so instances whose clocks differ agree on it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local idle, absolute = tonumber(ARGV[3]), tonumber(ARGV[4])
local expires = now + math.min(idle, absolute)
redis.call('HSET', KEYS[1],
  'uid', ARGV[2], 'created', now, 'last_used', now, 'gen', 0, 'rotated', 0,
  'abs_exp', now + absolute, 'ua', ARGV[5], 'ip', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
-- The index lives as long as its longest-lived session.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return expires - now
