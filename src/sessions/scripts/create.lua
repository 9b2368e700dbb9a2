-- Creates a refresh session and indexes it under its user.
-- KEYS[1] session hash, KEYS[2] the user's session index (sorted set by expiry)
-- ARGV: session id, user id, now (ms), idle timeout (ms), absolute lifetime (ms), user agent, ip
local now, idle, absolute = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local expires = now + math.min(idle, absolute)
redis.call('HSET', KEYS[1],
  'uid', ARGV[2], 'created', now, 'last_used', now, 'gen', 0, 'rotated', 0,
  'abs_exp', now + absolute, 'ua', ARGV[6], 'ip', ARGV[7])
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
-- The index lives as long as its longest-lived session.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return expires - now
