--[[
  Take an empty host out of allocation before it is terminated (scale-in):
  only if nothing is on it, it is marked draining and leaves the load sorted
  set in the same step, so no create can land on it between the check and
  the mark (allocation reads only the set). admitHosts does not put a
  draining host back; undrainHost does.

  KEYS[1] hostStatus   hash: the master's view of the host (draining, lostAtMs)
  KEYS[2] sandboxesOn  set: ids of the sandboxes on the host
  KEYS[3] load         sorted set: host id -> sandbox count
  ARGV[1] host id

  Returns 1 if drained, 0 if the host has sandboxes.
]]
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'draining', '1')
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
