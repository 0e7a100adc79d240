--[[
  The last step of a create, in one round trip: a sandbox still `creating`
  and still owned by this master becomes `running` with its container, its
  expiry is set (and indexed for the reaper), and the whole record comes back
  for the API's answer. A sandbox that left `creating` meanwhile (deleted,
  lost, or abandoned by the reconciler because this master looked dead) is
  not touched: the caller undoes what it started.

  KEYS[1] sandbox  hash
  KEYS[2] expiry   sorted set: sandbox id -> expires at (ms)
  KEYS[3] counts   hash: state -> sandboxes in it (lib/setState.lua)
  ARGV[1] sandbox id
  ARGV[2] the calling master's id
  ARGV[3] now (ms)
  ARGV[4] expires at (ms)
  ARGV[5] host port of the sandbox's worker
  ARGV[6] container id
  ARGV[7] port of the host's TLS ingress, '' when TLS is off
  ARGV[8] what its container may use, as JSON ('' when its manager did not say)

  Returns the record as a flat field, value list, or 0 if it was not this
  master's `creating` sandbox.
]]
--@include lib/setState.lua

local rec = redis.call('HMGET', KEYS[1], 'state', 'owner')
if rec[1] ~= 'creating' or rec[2] ~= ARGV[2] then return 0 end
setState(KEYS[1], KEYS[3], 'running')
redis.call('HSET', KEYS[1], 'stateSinceMs', ARGV[3], 'expiresAtMs', ARGV[4],
  'hostPort', ARGV[5], 'containerId', ARGV[6], 'ingressPort', ARGV[7], 'size', ARGV[8])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return redis.call('HGETALL', KEYS[1])
