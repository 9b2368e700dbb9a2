-- Whether a session is live: it exists and is of the user's current epoch.
-- KEYS[1] session hash, KEYS[2] the user's session epoch (one hash slot)
-- Returns 1 or 0.
local fields = redis.call('HMGET', KEYS[1], 'g', 'e')
if not fields[1] then
  return 0
end
if tonumber(fields[2] or '0') ~= tonumber(redis.call('GET', KEYS[2]) or '0') then
  return 0
end
return 1
