-- Takes one unit from each of several fixed-window budgets, all or none.
-- KEYS: the counters; ARGV[1] the window (ms), ARGV[1 + i] the limit of KEYS[i].
-- Returns {0, 0} when every counter had room and now counts one more, or
-- {i, ms left in its window} naming the first full counter (nothing counted).
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[1 + i]) then
    local left = redis.call('PTTL', KEYS[i])
    if left < 0 then
      -- A counter without expiry never ends its window: give it one.
      redis.call('PEXPIRE', KEYS[i], ARGV[1])
      left = tonumber(ARGV[1])
    end
    return {i, left}
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return {0, 0}
