-- Gives back what take.lua took, to counters whose window is still open.
-- KEYS: the counters.
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 0
