-- Lists a user's live sessions, pruning index entries whose session is gone.
-- KEYS[1] the user's session index; ARGV[1] the user's session key prefix
-- (its session hashes share the index's hash slot)
-- Returns a flat list: id, created, last_used, idle expiry (ms), user agent, ip; repeated.
-- The time comes from Redis, so instances whose clocks differ agree on it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live = {}
for i = 1, #entries, 2 do
  local sid, expires = entries[i], entries[i + 1]
  local f = redis.call('HMGET', ARGV[1] .. sid, 'c', 'u', 'ip', 'a0', 'a1', 'a2', 'a3')
  if f[1] then
    -- The user agent's pieces (`create.lua`), the missing ones false.
    local agent = {}
    for i = 4, 7 do
      if f[i] then
        table.insert(agent, f[i])
      end
    end
    for _, v in ipairs({sid, f[1], f[2], expires, table.concat(agent), f[3]}) do
      table.insert(live, v)
    end
  else
    redis.call('ZREM', KEYS[1], sid)
  end
end
return live
