--[[
  A host whose heartbeat lapsed: every creating, running or paused (pausing, resuming) sandbox on it
  becomes `lost` (a delete in progress is left to finish) and every sandbox
  leaves the host's set (so the host, if it comes back, is not counted for
  them: its manager reaps their containers, keeping the workspaces of the
  lost ones), and stops expiring. The host's count goes to 0 and its status
  says since when it is lost. Does nothing if the host is alive again by the
  time it runs. The host joins the set of lost hosts (watched for coming back).

  KEYS[1] load    sorted set: host id -> sandbox count
  KEYS[2] expiry  sorted set: sandbox id -> expires at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] host id
  ARGV[3] now (ms)

  Returns the ids marked lost.
]]
--@include lib/setState.lua

local p = ARGV[1]
local h = ARGV[2]
if redis.call('EXISTS', p .. ':alive:' .. h) == 1 then return {} end
local on = p .. ':host:' .. h .. ':sandboxes'
local lost = {}
for _, id in ipairs(redis.call('SMEMBERS', on)) do
  local sandbox = p .. ':sandbox:' .. id
  local state = redis.call('HGET', sandbox, 'state')
  if state == 'running' or state == 'creating' or state == 'pausing' or state == 'paused' or state == 'resuming' then
    setState(sandbox, p .. ':counts', 'lost')
    redis.call('HSET', sandbox, 'lostAtMs', ARGV[3], 'stateSinceMs', ARGV[3], 'lostReason', 'host lost')
    redis.call('ZREM', KEYS[2], id)
    lost[#lost + 1] = id
  end
end
redis.call('DEL', on)
redis.call('ZADD', KEYS[1], 'XX', 0, h)
redis.call('HSETNX', p .. ':host:' .. h .. ':status', 'lostAtMs', ARGV[3])
redis.call('SADD', p .. ':lost-hosts', h)
return lost
