--[[
  Give a new sandbox the least-loaded host that is alive and has room, in one
  step: the host's count goes up and the sandbox is recorded as `creating`
  on it, owned by the calling master, so no number of concurrent callers
  (across any number of masters) can put a host over its capacity, and a
  create whose master dies is known as such (its liveness key is gone).

  Hosts are tried in the order of the load sorted set (lowest count first),
  a few at a time: the first one usually has room, and reading the whole set
  would make every create cost as much as there are hosts. A host is skipped
  when its heartbeat key is gone, it is in the exclusion list, or it is at
  capacity; a draining host (being scaled in) is not in the set at all. The
  count checked is the host's score: every script that changes a host's
  sandbox set sets the score from it in the same step (the master alone
  writes both), so the score is the set's size without reading the set.
  Every redis.call costs a few microseconds of Redis's single thread, so
  this script makes as few as it can (8 when the first host has room).

  Keys other than KEYS are reached by id under ARGV[1], the `{hosts}` prefix
  every one of them shares (src/redis/keys.ts builds the same names); the
  new record is counted in `counts` (lib/setState.lua).

  KEYS[1] load       sorted set: host id -> sandbox count
  KEYS[2] sandboxes  sorted set: sandbox id -> created at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] sandbox id
  ARGV[3] now (ms)
  ARGV[4] hosts not to use, comma-separated ('' for none)
  ARGV[5] the calling master's id (the record's owner while it is creating)
  ARGV[6] a host to try first ('' for none): where a named workspace's volume is
  ARGV[7] the template's warm set ('' for none): hosts by how many warm
          containers of the template they have ready (each manager writes
          its own); among those with room, the one with the most is tried
          before the least-loaded order, so that one host's empty pool does
          not make a cold start while another has warm ones
  ARGV[8..] field, value, ... more fields of the sandbox hash

  Returns {host id, address, manager URL}, or
    -1 no host has room
    -2 the id is in use or was in use recently
]]
local p = ARGV[1]
local id = ARGV[2]
local sandbox = p .. ':sandbox:' .. id
if redis.call('EXISTS', sandbox, p .. ':tomb:' .. id) > 0 then
  return -2
end
local excluded = {}
for h in string.gmatch(ARGV[4], '[^,]+') do excluded[h] = true end

--@include lib/findSlot.lua
--@include lib/setState.lua

local slot = findSlot(p, KEYS[1], id, excluded, ARGV[6], ARGV[7])
if not slot then return -1 end
setState(sandbox, p .. ':counts', 'creating')
redis.call('HSET', sandbox, 'host', slot[1], 'address', slot[2], 'managerUrl', slot[3],
  'createdAtMs', ARGV[3], 'stateSinceMs', ARGV[3], 'owner', ARGV[5], unpack(ARGV, 8))
redis.call('ZADD', KEYS[2], ARGV[3], id)
return slot
