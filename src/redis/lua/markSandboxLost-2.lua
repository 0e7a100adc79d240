--[[
  A running sandbox whose container is gone (its manager reported it exited,
  or its host's table no longer has it) becomes `lost`: it leaves its host's
  set (the count follows: nothing runs for it there), stops expiring, and
  says when and why. Its record and workspace are kept for the retention
  time; the caller removes its names at once.

  KEYS[1] load    sorted set: host id -> sandbox count
  KEYS[2] expiry  sorted set: sandbox id -> expires at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] sandbox id
  ARGV[3] the host the container was reported gone on
  ARGV[4] now (ms)
  ARGV[5] why

  Returns 1 if it became lost, 0 if it was not running on that host.
]]
--@include lib/setState.lua

local p = ARGV[1]
local id = ARGV[2]
local h = ARGV[3]
local sandbox = p .. ':sandbox:' .. id
local rec = redis.call('HMGET', sandbox, 'state', 'host')
if rec[1] ~= 'running' or rec[2] ~= h then return 0 end
setState(sandbox, p .. ':counts', 'lost')
redis.call('HSET', sandbox, 'lostAtMs', ARGV[4], 'stateSinceMs', ARGV[4], 'lostReason', ARGV[5])
local on = p .. ':host:' .. h .. ':sandboxes'
if redis.call('SREM', on, id) == 1 then
  redis.call('ZADD', KEYS[1], 'XX', redis.call('SCARD', on), h)
end
redis.call('ZREM', KEYS[2], id)
return 1
