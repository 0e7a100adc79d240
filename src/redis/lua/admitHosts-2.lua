--[[
  Put every registered, heart-beating host that is not in the load sorted
  set into it, scored by what the master has placed on it (a host back from
  being forgotten rejoins with its true count, never twice). Managers only
  announce themselves (the index); the master alone writes the load.

  KEYS[1] hosts  set: every registered host id
  KEYS[2] load   sorted set: host id -> sandbox count
  ARGV[1] key prefix, e.g. omega:{hosts}

  Returns the ids admitted.
]]
local p = ARGV[1]
-- The load set only ever holds registered hosts (a host enters it from the
-- index and leaves both together when forgotten): the same size means every
-- registered host is in it, and there is nothing to look at (the common
-- case, whatever the number of hosts).
if redis.call('SCARD', KEYS[1]) == redis.call('ZCARD', KEYS[2]) then return {} end
local admitted = {}
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not redis.call('ZSCORE', KEYS[2], h) and redis.call('EXISTS', p .. ':alive:' .. h) == 1
    and redis.call('HGET', p .. ':host:' .. h .. ':status', 'draining') ~= '1' then
    redis.call('ZADD', KEYS[2], redis.call('SCARD', p .. ':host:' .. h .. ':sandboxes'), h)
    admitted[#admitted + 1] = h
  end
end
return admitted
