-- Reads a counter without counting. KEYS[1] counter. Returns {count, ms left}.
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
return {count, redis.call('PTTL', KEYS[1])}
