--[[
  Apply a batch of DNS record changes atomically: all of them or none.

  KEYS[1] zone     hash: relative name -> JSON record sets
  KEYS[2] names    sorted set of relative names (all scores 0, for lex paging)
  KEYS[3] serial   string: the SOA serial
  KEYS[4] changes  stream: the change feed every DNS server follows

  ARGV[1] JSON array of changes, already validated and normalized by the caller:
          [{action = "UPSERT"|"DELETE", name, type?, ttl?, values?, ifExists?}]
          (a DELETE with ifExists removes what is there and is no failure when
          nothing is: deleting every name of a sandbox is then idempotent)
  ARGV[2] approximate number of feed entries to keep
  ARGV[3] current unix time in seconds: the first serial of a new zone, so a
          serial keeps growing (RFC 1982) even across an emptied Redis

  Returns {serial} on success (the current serial, unchanged, when the
          batch changed nothing: no feed entry either),
          {-1, index} when change `index` (0-based) deletes a name or type that
          does not exist and has no ifExists.
]]
local changes = cjson.decode(ARGV[1])
local state = {}
local order = {}
local changed = false

local function current(name)
  local s = state[name]
  if s == nil then
    local raw = redis.call('HGET', KEYS[1], name)
    if raw then s = cjson.decode(raw) else s = false end
    state[name] = s
    order[#order + 1] = name
  end
  return s
end

for i, c in ipairs(changes) do
  local s = current(c.name)
  if c.action == 'UPSERT' then
    if not s then s = {} end
    s[c.type] = { ttl = c.ttl, values = c.values }
    changed = true
  elseif not s or (c.type and s[c.type] == nil) then
    if not c.ifExists then return { -1, i - 1 } end
  else
    if c.type then
      s[c.type] = nil
      if next(s) == nil then s = false end
    else
      s = false
    end
    changed = true
  end
  state[c.name] = s
end

if not changed then
  return { tonumber(redis.call('GET', KEYS[3]) or '0') }
end

local serial
if redis.call('EXISTS', KEYS[3]) == 0 then
  serial = tonumber(ARGV[3])
  redis.call('SET', KEYS[3], serial)
else
  serial = redis.call('INCR', KEYS[3])
end

local feed = {}
for _, name in ipairs(order) do
  local s = state[name]
  if s then
    redis.call('HSET', KEYS[1], name, cjson.encode(s))
    redis.call('ZADD', KEYS[2], 0, name)
    feed[name] = s
  else
    redis.call('HDEL', KEYS[1], name)
    redis.call('ZREM', KEYS[2], name)
    feed[name] = cjson.null
  end
end

redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'serial', serial, 'changes', cjson.encode(feed))
return { serial }
