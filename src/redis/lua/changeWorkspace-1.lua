--[[
  A named workspace's record, changed by the master in steps that each
  check what they expect, so that creates racing for one workspace from
  several masters leave it with one sandbox:

    attach:   to a new sandbox: made when the name is new; refused when
              another sandbox that still exists (and is not being deleted)
              has it, or when it is of another template
    place:    its volume is on host ARGV[4] now (after its sandbox started
              there): the host's set of workspaces follows, so that host's
              manager keeps the volume and the one it left may remove it;
              only while ARGV[3] is the sandbox attached
    detach:   its sandbox ARGV[3] is gone: it has none
    snapshot: its latest snapshot is ARGV[4] (taken of it or of its sandbox)
    forget:   deleted: only when no live sandbox has it

  KEYS[1] workspaces  sorted set: workspace name -> created at (ms)
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2] workspace name
  ARGV[3] 'attach', 'place', 'detach', 'snapshot' or 'forget'
  ARGV[4] attach, place, detach: the sandbox id; snapshot: the snapshot id
  ARGV[5] attach: the template; place: the host id
  ARGV[6] now (ms)

  Returns the record (after the change; forget: before it) as a flat
  field, value list; or a refusal 'busy:<sandbox id>', 'template:<template>'
  or 'missing'. snapshot returns the snapshot that was the latest ('' none).
]]
local p = ARGV[1]
local name = ARGV[2]
local op = ARGV[3]
local ws = p .. ':workspace:' .. name
local rec = redis.call('HMGET', ws, 'template', 'sandbox', 'host', 'snapshot')
local exists = rec[1] ~= false

local function holder()
  local id = rec[2]
  if not id or id == '' then return nil end
  local state = redis.call('HGET', p .. ':sandbox:' .. id, 'state')
  if not state or state == 'deleting' then return nil end
  return id
end

if op == 'attach' then
  if not exists then
    redis.call('HSET', ws, 'template', ARGV[5], 'sandbox', ARGV[4], 'host', '', 'snapshot', '', 'createdAtMs', ARGV[6])
    redis.call('ZADD', KEYS[1], ARGV[6], name)
    return redis.call('HGETALL', ws)
  end
  if rec[1] ~= ARGV[5] then return 'template:' .. rec[1] end
  local h = holder()
  if h and h ~= ARGV[4] then return 'busy:' .. h end
  redis.call('HSET', ws, 'sandbox', ARGV[4])
  return redis.call('HGETALL', ws)
end

if not exists then return 'missing' end

if op == 'place' then
  if rec[2] ~= ARGV[4] then return 'busy:' .. (rec[2] or '') end
  if rec[3] and rec[3] ~= '' and rec[3] ~= ARGV[5] then
    redis.call('SREM', p .. ':host:' .. rec[3] .. ':workspaces', name)
  end
  redis.call('SADD', p .. ':host:' .. ARGV[5] .. ':workspaces', name)
  redis.call('HSET', ws, 'host', ARGV[5])
  return redis.call('HGETALL', ws)
end

if op == 'detach' then
  if rec[2] == ARGV[4] then redis.call('HSET', ws, 'sandbox', '') end
  return redis.call('HGETALL', ws)
end

if op == 'snapshot' then
  redis.call('HSET', ws, 'snapshot', ARGV[4])
  return rec[4] or ''
end

-- forget
local h = holder()
if h then return 'busy:' .. h end
local before = redis.call('HGETALL', ws)
if rec[3] and rec[3] ~= '' then redis.call('SREM', p .. ':host:' .. rec[3] .. ':workspaces', name) end
redis.call('DEL', ws)
redis.call('ZREM', KEYS[1], name)
return before
