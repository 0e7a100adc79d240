--[[
  A drained host whose termination failed takes work again: no longer
  draining, and back in the load sorted set with its true count.

  KEYS[1] hostStatus   hash: the master's view of the host
  KEYS[2] sandboxesOn  set: ids of the sandboxes on the host
  KEYS[3] load         sorted set: host id -> sandbox count
  ARGV[1] host id

  Returns 1.
]]
redis.call('HDEL', KEYS[1], 'draining')
redis.call('ZADD', KEYS[3], redis.call('SCARD', KEYS[2]), ARGV[1])
return 1
