-- Rotates a refresh session atomically, unless the user's session epoch
-- moved since the session was stamped with it, or the session used up its
-- refreshes for the window: one round trip per refresh, the rate limit
-- included. Fields as `sessions/mod.rs` lays them out.
-- KEYS[1] session hash, KEYS[2] its user's session index, KEYS[3] the
-- user's session epoch (one hash slot)
-- ARGV: session id, presented generation, idle timeout (ms), grace (ms),
-- refreshes per window (0: no limit), window (ms), absolute lifetime (ms)
-- Returns {status, generation, ms until idle expiry, amr, auth time} (the
-- last two as the sign-in stored them, for the access token),
-- {'limited', ms until the window ends}, or {status} alone when nothing is
-- handed out; status is one of:
local ROTATED = 'rotated'     -- the presented token was current
local CONVERGED = 'converged' -- its predecessor within the grace window: hand back the current one
local INVALID = 'invalid'     -- unknown, expired or of an older epoch
local REUSED = 'reused'       -- an older token came back: the session is revoked
local LIMITED = 'limited'     -- too many refreshes of this session in the window: nothing changes
local session, index = KEYS[1], KEYS[2]
local fields = redis.call('HMGET', session, 'g', 'u', 'c', 'e', 'm', 't', 'n', 'w')
if not fields[1] then
  return {INVALID}
end
local gen, last_used, created = tonumber(fields[1]), tonumber(fields[2]), tonumber(fields[3])
local presented = tonumber(ARGV[2])
local idle, grace, absolute = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])
-- The time comes from Redis, so instances whose clocks differ agree on it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function revoke()
  redis.call('DEL', session)
  redis.call('ZREM', index, ARGV[1])
end

-- The absolute lifetime counts from creation as currently configured, so
-- shortening it applies to the sessions already open.
local abs_exp = created + absolute
if now >= abs_exp or tonumber(fields[4] or '0') ~= tonumber(redis.call('GET', KEYS[3]) or '0') then
  revoke()
  return {INVALID}
end

-- The session's refresh budget: a fixed window, counted in the session's
-- own hash (it ends with the session). Every presentation counts, as the
-- attempt to refresh is what is limited.
local limit, window = tonumber(ARGV[5]), tonumber(ARGV[6])
local used, window_end = tonumber(fields[7] or '0'), tonumber(fields[8] or '0')
if limit > 0 then
  if now >= window_end then
    used, window_end = 0, now + window
  end
  if used >= limit then
    return {LIMITED, window_end - now}
  end
  used = used + 1
end

-- What this refresh changes in the hash, written in one command.
local changes = {}
if limit > 0 then
  changes = {'n', used, 'w', window_end}
end
local status
if presented == gen - 1 and now - last_used <= grace then
  -- `u` stays when the current generation was handed out, so the grace
  -- window never stretches.
  status = CONVERGED
elseif presented == gen then
  status = ROTATED
  gen = gen + 1
  table.insert(changes, 'g')
  table.insert(changes, gen)
  table.insert(changes, 'u')
  table.insert(changes, now)
else
  revoke()
  return {REUSED}
end
if #changes > 0 then
  redis.call('HSET', session, unpack(changes))
end

-- Every successful refresh restarts the idle timer, never past the absolute lifetime.
local expires = math.min(now + idle, abs_exp)
redis.call('PEXPIREAT', session, expires)
redis.call('ZADD', index, expires, ARGV[1])
-- The index lives as long as its longest-lived session: only ever later.
redis.call('PEXPIREAT', index, expires, 'GT')
return {status, gen, expires - now, fields[5], fields[6]}
