-- Revokes every session of a user.
-- KEYS[1] the user's session index; ARGV[1] the user's session key prefix
-- (its session hashes share the index's hash slot).
-- Returns the number of sessions revoked.
local revoked = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  revoked = revoked + redis.call('DEL', ARGV[1] .. sid)
end
redis.call('DEL', KEYS[1])
return revoked
