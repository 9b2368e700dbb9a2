-- Rotates a refresh session atomically, unless the user's session epoch
-- moved since the session was stamped with it.
-- KEYS[1] session hash, KEYS[2] its user's session index, KEYS[3] the
-- user's session epoch (one hash slot)
-- ARGV: session id, presented generation, idle timeout (ms), grace (ms)
-- Returns {status, user id, generation, ms until idle expiry, amr, auth
-- time} (the last two as the sign-in stored them, for the access token), or
-- {status} alone when nothing is handed out; status is one of:
local ROTATED = 'rotated'     -- the presented token was current
local CONVERGED = 'converged' -- its predecessor within the grace window: hand back the current one
local INVALID = 'invalid'     -- unknown, expired or of an older epoch
local REUSED = 'reused'       -- an older token came back: the session is revoked
local session, index = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', session, 'uid', 'gen', 'rotated', 'abs_exp', 'ep', 'amr', 'at', 'created')
if not fields[1] then
  return {INVALID}
end
local uid, gen, rotated, abs_exp = fields[1], tonumber(fields[2]), tonumber(fields[3]), tonumber(fields[4])
local presented = tonumber(ARGV[2])
local idle, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
-- The time comes from Redis, so instances whose clocks differ agree on it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function revoke()
  redis.call('DEL', session)
  redis.call('ZREM', index, ARGV[1])
end

if now >= abs_exp or tonumber(fields[5] or '0') ~= tonumber(redis.call('GET', KEYS[3]) or '0') then
  revoke()
  return {INVALID}
end

local status
if presented == gen then
  gen = gen + 1
  rotated = now
  status = ROTATED
elseif presented == gen - 1 and now - rotated <= grace then
  status = CONVERGED
else
  revoke()
  return {REUSED}
end

-- Every successful refresh restarts the idle timer, never past the absolute lifetime.
local expires = math.min(now + idle, abs_exp)
redis.call('HSET', session, 'gen', gen, 'rotated', rotated, 'last_used', now)
redis.call('PEXPIREAT', session, expires)
redis.call('ZADD', index, expires, ARGV[1])
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
-- Sessions stored before sign-ins recorded how: a password, at creation.
local amr = fields[6] or 'p'
local auth_time = fields[7] or tostring(math.floor(tonumber(fields[8]) / 1000))
return {status, uid, gen, expires - now, amr, auth_time}
