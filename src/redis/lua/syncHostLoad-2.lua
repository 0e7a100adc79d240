--[[
  Set a host's score in the load sorted set to the number of sandboxes on it,
  atomically, and only while the host is registered (XX: a deregistered host
  must not reappear as a target for allocation).

  KEYS[1] sandboxesOn  set: ids of the sandboxes on the host
  KEYS[2] load         sorted set: host id -> sandbox count
  ARGV[1] host id

  Returns the count.
]]
local n = redis.call('SCARD', KEYS[1])
redis.call('ZADD', KEYS[2], 'XX', n, ARGV[1])
return n
