--[[
  Forget a host that is gone for good (silent past the forget time, or
  terminated by scale-in): out of allocation and the index, its records
  removed. The host's own keys (its record and container table) belong to
  its manager; they are removed here only because that manager is gone,
  which is checked in the same step: a host heart-beating again is kept.

  KEYS[1] hosts  set: every registered host id
  KEYS[2] load   sorted set: host id -> sandbox count
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] host id

  Returns 1 if forgotten, 0 if the host is alive.
]]
local p = ARGV[1]
local h = ARGV[2]
if redis.call('EXISTS', p .. ':alive:' .. h) == 1 then return 0 end
redis.call('ZREM', KEYS[2], h)
redis.call('SREM', KEYS[1], h)
redis.call('SREM', p .. ':lost-hosts', h)
redis.call('ZREM', p .. ':beats', h)
redis.call('DEL', p .. ':host:' .. h, p .. ':host:' .. h .. ':status', p .. ':host:' .. h .. ':containers',
  p .. ':host:' .. h .. ':sandboxes')
return 1
