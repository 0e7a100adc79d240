--[[
  A host whose heartbeat lapsed: every sandbox on it becomes `lost` and
  leaves the host's set (so the host, if it comes back, is not counted for
  them: its manager reaps their containers as orphans), and stops expiring
  (a lost sandbox is not deleted again). Does nothing if the host is alive
  again by the time it runs.

  KEYS[1] load    sorted set: host id -> sandbox count
  KEYS[2] expiry  sorted set: sandbox id -> expires at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] host id
  ARGV[3] now (ms)

  Returns the ids marked lost.
]]
local p = ARGV[1]
local h = ARGV[2]
if redis.call('EXISTS', p .. ':alive:' .. h) == 1 then return {} end
local on = p .. ':host:' .. h .. ':sandboxes'
local ids = redis.call('SMEMBERS', on)
for _, id in ipairs(ids) do
  local sandbox = p .. ':sandbox:' .. id
  if redis.call('EXISTS', sandbox) == 1 then
    redis.call('HSET', sandbox, 'state', 'lost', 'lostAtMs', ARGV[3])
  end
  redis.call('ZREM', KEYS[2], id)
end
redis.call('DEL', on)
redis.call('ZADD', KEYS[1], 'XX', 0, h)
redis.call('HSETNX', p .. ':host:' .. h, 'lostAtMs', ARGV[3])
return ids
