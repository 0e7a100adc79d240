--[[
  The first step of a delete: whatever state the sandbox is in, it becomes
  `deleting`, owned by this master, and stops expiring (so the reaper does
  not start a second delete). Its names and container are removed next by
  the caller, then releaseSandbox forgets it. Repeating it (a retry, a second
  master, the reconciler finishing an abandoned delete) takes the delete over.

  KEYS[1] sandbox  hash
  KEYS[2] expiry   sorted set: sandbox id -> expires at (ms)
  KEYS[3] counts   hash: state -> sandboxes in it (lib/setState.lua)
  ARGV[1] sandbox id
  ARGV[2] the calling master's id
  ARGV[3] now (ms)

  Returns the record as a flat field, value list (with `deletedFrom`, the
  state it left), or 0 when there is none.
]]
--@include lib/setState.lua

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if state ~= 'deleting' then
  setState(KEYS[1], KEYS[3], 'deleting')
  redis.call('HSET', KEYS[1], 'deletedFrom', state, 'stateSinceMs', ARGV[3])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return redis.call('HGETALL', KEYS[1])
