-- Whether a refresh token is the live session's current one, changing
-- nothing: no rotation, no idle-timer reset, no reuse detection
-- (introspection).
-- KEYS[1] session hash, KEYS[2] the user's session epoch (one hash slot)
-- ARGV: presented generation
-- Returns the milliseconds until the session's idle expiry, or -1.
local fields = redis.call('HMGET', KEYS[1], 'g', 'e')
if not fields[1] or tonumber(fields[1]) ~= tonumber(ARGV[1]) then
  return -1
end
if tonumber(fields[2] or '0') ~= tonumber(redis.call('GET', KEYS[2]) or '0') then
  return -1
end
local left = redis.call('PTTL', KEYS[1])
if left <= 0 then
  return -1
end
return left
