-- Rotates a refresh session atomically, unless the user's session epoch
-- moved since the session was stamped with it, or the session used up its
-- refreshes for the window: one round trip per refresh, the rate limit
-- included.
-- KEYS[1] session hash, KEYS[2] its user's session index, KEYS[3] the
-- user's session epoch (one hash slot)
-- ARGV: session id, presented generation, idle timeout (ms), grace (ms),
-- refreshes per window (0: no limit), window (ms)
-- Returns {status, user id, generation, ms until idle expiry, amr, auth
-- time} (the last two as the sign-in stored them, for the access token),
-- {'limited', ms until the window ends}, or {status} alone when nothing is
-- handed out; status is one of:
local ROTATED = 'rotated'     -- the presented token was current
local CONVERGED = 'converged' -- its predecessor within the grace window: hand back the current one
local INVALID = 'invalid'     -- unknown, expired or of an older epoch
local REUSED = 'reused'       -- an older token came back: the session is revoked
local LIMITED = 'limited'     -- too many refreshes of this session in the window: nothing changes
local session, index = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', session, 'uid', 'gen', 'rotated', 'abs_exp', 'ep', 'amr', 'at', 'created', 'rl_n', 'rl_end')
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

-- The session's refresh budget: a fixed window, counted in the session's
-- own hash (it ends with the session). Every presentation counts, as the
-- attempt to refresh is what is limited.
local limit, window = tonumber(ARGV[5]), tonumber(ARGV[6])
if limit > 0 then
  local used, window_end = tonumber(fields[9] or '0'), tonumber(fields[10] or '0')
  if now >= window_end then
    used, window_end = 0, now + window
  end
  if used >= limit then
    return {LIMITED, window_end - now}
  end
  redis.call('HSET', session, 'rl_n', used + 1, 'rl_end', window_end)
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
