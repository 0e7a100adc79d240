--[[
  The last step of a delete: a sandbox that is `deleting` leaves its host's
  set (the host's count follows), the master's indexes and Redis, and its id
  is kept out of use for a while (a resolver may still cache its name).
  A sandbox in any other state is left alone (a delete must have begun, so
  its names and container were removed first). Index entries of an id with
  no record are dropped all the same (a crash between steps).

  KEYS[1] load       sorted set: host id -> sandbox count
  KEYS[2] sandboxes  sorted set: sandbox id -> created at (ms)
  KEYS[3] expiry     sorted set: sandbox id -> expires at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] sandbox id
  ARGV[3] seconds the id stays out of use

  Its count leaves the counts by state (lib/setState.lua).

  Returns 1 if released, 0 if there was no record, -1 if it is not deleting.
]]
--@include lib/setState.lua

local p = ARGV[1]
local id = ARGV[2]
local sandbox = p .. ':sandbox:' .. id
local rec = redis.call('HMGET', sandbox, 'state', 'host')
if rec[1] and rec[1] ~= 'deleting' then return -1 end
if rec[2] then
  local on = p .. ':host:' .. rec[2] .. ':sandboxes'
  if redis.call('SREM', on, id) == 1 then
    redis.call('ZADD', KEYS[1], 'XX', redis.call('SCARD', on), rec[2])
  end
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', p .. ':frozen', id)
redis.call('ZREM', p .. ':stopped', id)
redis.call('ZREM', p .. ':snapshot-due', id)
redis.call('SET', p .. ':tomb:' .. id, '1', 'EX', ARGV[3])
if not rec[1] then return 0 end
setState(sandbox, p .. ':counts', false)
redis.call('DEL', sandbox)
return 1
