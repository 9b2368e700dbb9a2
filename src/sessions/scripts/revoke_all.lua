-- Revokes every session of a user.
-- KEYS[1] the user's session index; ARGV: key prefix, user id
-- Returns the number of sessions revoked.
local revoked = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local session = ARGV[1] .. 'session:' .. sid
  if redis.call('HGET', session, 'uid') == ARGV[2] then
    revoked = revoked + redis.call('DEL', session)
  end
end
redis.call('DEL', KEYS[1])
return revoked
