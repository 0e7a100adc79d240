--[[
  A sandbox that leaves its host or comes back to one from a snapshot, in
  the steps one master takes (each checks the state it expects, so two
  masters racing a resume, a delete or an archive leave one state):

    archive: pausing (kind archived, owned by the caller) -> paused,
             archived: its workspace is in the snapshot store, its container
             and volume are gone, so it leaves its host's set and no longer
             counts there (the host's disk and slot are free)
    begin:   lost, or paused and archived -> resuming on a host with room,
             taken like allocateSandbox takes one (the preferred host first,
             then the least loaded), owned by the caller; `movedFrom` says
             what to go back to if the restore fails
    back:    resuming with movedFrom, owned by the caller ('' any: the
             reconciler) -> what it was, its slot given back

  settleSandbox ends a begun move (resuming -> running) as it ends a resume.

  KEYS[1] load     sorted set: host id -> sandbox count
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] sandbox id
  ARGV[3] 'archive', 'begin' or 'back'
  ARGV[4] the calling master's id ('' for any, back only)
  ARGV[5] now (ms)
  ARGV[6] begin: the host to try first ('' none)
  ARGV[7] begin: hosts not to use, comma-separated ('' none)

  Returns the record as a flat field, value list when the step was taken
  (begin: {host id, address, manager URL} instead); otherwise the state the
  sandbox is in as a string ('' when there is none), or -1 (begin) when no
  host has room.
]]
--@include lib/setState.lua

local p = ARGV[1]
local id = ARGV[2]
local op = ARGV[3]
local sandbox = p .. ':sandbox:' .. id
local counts = p .. ':counts'
local rec = redis.call('HMGET', sandbox, 'state', 'owner', 'pauseKind', 'host', 'movedFrom')
local state = rec[1]
if not state then return '' end

local function leave(h)
  if not h or h == '' then return end
  local on = p .. ':host:' .. h .. ':sandboxes'
  if redis.call('SREM', on, id) == 1 then
    redis.call('ZADD', KEYS[1], 'XX', redis.call('SCARD', on), h)
  end
end

if op == 'archive' then
  if state ~= 'pausing' or rec[3] ~= 'archived' then return state end
  if ARGV[4] ~= '' and rec[2] ~= ARGV[4] then return state end
  leave(rec[4])
  setState(sandbox, counts, 'paused')
  redis.call('HSET', sandbox, 'owner', '', 'stateSinceMs', ARGV[5], 'pausedAtMs', ARGV[5], 'host', '', 'address', '', 'managerUrl', '')
  redis.call('HDEL', sandbox, 'hostPort', 'containerId')
  redis.call('ZREM', p .. ':frozen', id)
  redis.call('ZREM', p .. ':stopped', id)
  return redis.call('HGETALL', sandbox)
end

if op == 'back' then
  if state ~= 'resuming' or not rec[5] then return state end
  if ARGV[4] ~= '' and rec[2] ~= ARGV[4] then return state end
  leave(rec[4])
  if rec[5] == 'lost' then
    setState(sandbox, counts, 'lost')
    redis.call('HSET', sandbox, 'stateSinceMs', ARGV[5])
  else
    setState(sandbox, counts, 'paused')
    redis.call('HSET', sandbox, 'pauseKind', 'archived', 'stateSinceMs', ARGV[5], 'host', '', 'address', '', 'managerUrl', '')
  end
  redis.call('HSET', sandbox, 'owner', '')
  redis.call('HDEL', sandbox, 'movedFrom', 'hostPort', 'containerId')
  return redis.call('HGETALL', sandbox)
end

-- begin
local from
if state == 'lost' then
  from = 'lost'
elseif state == 'paused' and rec[3] == 'archived' then
  from = 'archived'
else
  return state
end
local excluded = {}
for h in string.gmatch(ARGV[7], '[^,]+') do excluded[h] = true end

--@include lib/findSlot.lua

local slot = findSlot(p, KEYS[1], id, excluded, ARGV[6], '')
if not slot then return -1 end
setState(sandbox, counts, 'resuming')
redis.call('HSET', sandbox, 'owner', ARGV[4], 'stateSinceMs', ARGV[5], 'movedFrom', from,
  'host', slot[1], 'address', slot[2], 'managerUrl', slot[3], 'dns', '1')
-- A lost sandbox comes back with its whole lifetime (an archived one kept its time left when paused).
if from == 'lost' then redis.call('HSET', sandbox, 'remainingMs', redis.call('HGET', sandbox, 'lifetimeMs') or '0') end
return slot
