--[[
  Put a new certificate in place, only for the master that holds the
  certificate lock: a master whose lock lapsed while its order ran (it was
  paused, or slow) must not replace what the next holder stored.

  KEYS[1] lock         string: the holder's token
  KEYS[2] certificate  hash: bundle (JSON, the key inside), fingerprint, storedAtMs
  ARGV[1] the caller's lock token
  ARGV[2] bundle JSON
  ARGV[3] fingerprint
  ARGV[4] now (ms)

  Returns 1 if stored, -1 if the caller does not hold the lock.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[2], 'bundle', ARGV[2], 'fingerprint', ARGV[3], 'storedAtMs', ARGV[4])
return 1
