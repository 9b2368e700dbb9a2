-- Rotates a refresh session atomically.
-- KEYS[1] session hash, KEYS[2] its user's session index (one hash slot)
-- ARGV: session id, presented generation, now (ms), idle timeout (ms), grace (ms)
-- Returns {status, user id, generation, ms until idle expiry}; status:
--   1 rotated (the presented token was current), 2 within the grace window
--   (the previous token: hand back the current one), 0 unknown or expired,
--   3 reuse detected: the session has been revoked.
local session, index = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', session, 'uid', 'gen', 'rotated', 'abs_exp')
if not fields[1] then
  return {0}
end
local uid, gen, rotated, abs_exp = fields[1], tonumber(fields[2]), tonumber(fields[3]), tonumber(fields[4])
local presented, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local idle, grace = tonumber(ARGV[4]), tonumber(ARGV[5])

local function revoke()
  redis.call('DEL', session)
  redis.call('ZREM', index, ARGV[1])
end

if now >= abs_exp then
  revoke()
  return {0}
end

local status
if presented == gen then
  gen = gen + 1
  rotated = now
  status = 1
elseif presented == gen - 1 and now - rotated <= grace then
  status = 2
else
  revoke()
  return {3}
end

-- Every successful refresh restarts the idle timer, never past the absolute lifetime.
local expires = math.min(now + idle, abs_exp)
redis.call('HSET', session, 'gen', gen, 'rotated', rotated, 'last_used', now)
redis.call('PEXPIREAT', session, expires)
redis.call('ZADD', index, expires, ARGV[1])
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return {status, uid, gen, expires - now}
