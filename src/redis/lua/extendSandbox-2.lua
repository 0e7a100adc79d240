--[[
  Set a running sandbox's expiry (POST /:id/timeout, or an expiry that must
  be retried): the record and the reaper's index move together, and only
  while it is running, so a sandbox deleted or lost meanwhile is not put
  back in the index.

  KEYS[1] sandbox  hash
  KEYS[2] expiry   sorted set: sandbox id -> expires at (ms)
  ARGV[1] sandbox id
  ARGV[2] expires at (ms)

  Returns 1 if set, 0 if the sandbox is not running.
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'expiresAtMs', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
