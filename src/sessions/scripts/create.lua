-- Creates a refresh session and indexes it under its user, unless the
-- user's session epoch moved since the sign-in read it. Fields as
-- `sessions/mod.rs` lays them out.
-- KEYS[1] session hash, KEYS[2] the user's session index (sorted set by
-- expiry), KEYS[3] the user's session epoch (one hash slot)
-- ARGV: session id, idle timeout (ms), absolute lifetime (ms), user agent
-- ('' when none), ip, the epoch the sign-in read, the user's session cap,
-- the user's session key prefix, how the sign-in was completed (`amr`,
-- stored compact), when (unix seconds: `auth_time`)
-- Returns the ms until the session's idle expiry, or -1 when the epoch moved.
-- The time comes from Redis, so instances whose clocks differ agree on it.
local epoch = tonumber(redis.call('GET', KEYS[3]) or '0')
if epoch ~= tonumber(ARGV[6]) then
  return -1
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local idle, absolute = tonumber(ARGV[2]), tonumber(ARGV[3])
local expires = now + math.min(idle, absolute)
local fields = {'c', now, 'u', now, 'g', 0, 'ip', ARGV[5], 'm', ARGV[9], 't', ARGV[10]}
if epoch > 0 then
  table.insert(fields, 'e')
  table.insert(fields, epoch)
end
-- The user agent in pieces no longer than Redis keeps in a compact hash
-- (`hash-max-listpack-value`, 64 by default): one longer value would make
-- the whole hash a hashtable, twice the size.
local agent = ARGV[4]
for i = 0, math.ceil(#agent / 64) - 1 do
  table.insert(fields, 'a' .. i)
  table.insert(fields, string.sub(agent, i * 64 + 1, (i + 1) * 64))
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], expires, ARGV[1])

-- Over the cap: end the least recently used of the others.
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
if over > 0 then
  local others = {}
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if sid ~= ARGV[1] then
      local last_used = redis.call('HGET', ARGV[8] .. sid, 'u')
      if last_used then
        table.insert(others, {sid, tonumber(last_used)})
      else
        redis.call('ZREM', KEYS[2], sid)
        over = over - 1
      end
    end
  end
  table.sort(others, function(a, b) return a[2] < b[2] end)
  for i = 1, math.min(over, #others) do
    redis.call('DEL', ARGV[8] .. others[i][1])
    redis.call('ZREM', KEYS[2], others[i][1])
  end
end

-- The index lives as long as its longest-lived session, and a moved epoch
-- as long as any session stamped with it.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
if epoch > 0 and redis.call('PTTL', KEYS[3]) < absolute then
  redis.call('PEXPIRE', KEYS[3], absolute)
end
return expires - now
