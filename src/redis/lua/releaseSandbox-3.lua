--[[
  Forget a sandbox: out of its host's set (the host's count follows), out of
  the master's indexes, its record gone, and its id kept out of use for a
  while (a resolver may still cache its name). Idempotent.

  KEYS[1] load       sorted set: host id -> sandbox count
  KEYS[2] sandboxes  sorted set: sandbox id -> created at (ms)
  KEYS[3] expiry     sorted set: sandbox id -> expires at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] sandbox id
  ARGV[3] seconds the id stays out of use

  Returns 1 if a record was there, else 0.
]]
local p = ARGV[1]
local id = ARGV[2]
local sandbox = p .. ':sandbox:' .. id
local h = redis.call('HGET', sandbox, 'host')
if h then
  local on = p .. ':host:' .. h .. ':sandboxes'
  if redis.call('SREM', on, id) == 1 then
    redis.call('ZADD', KEYS[1], 'XX', redis.call('SCARD', on), h)
  end
end
local existed = redis.call('DEL', sandbox)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('SET', p .. ':tomb:' .. id, '1', 'EX', ARGV[3])
return existed
