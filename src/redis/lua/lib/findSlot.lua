--[[
  Shared by the scripts that place a sandbox on a host (allocateSandbox,
  moveSandbox), included where they say `--@include lib/findSlot.lua`.

  findSlot(p, load, id, excluded, preferred, warm): a slot for sandbox `id`
  on a host that is alive, not in `excluded` (a set) and below its capacity,
  taken at once: the sandbox joins the host's set and the host's count in
  `load` goes up. Hosts are tried in this order: `preferred` ('' none), then
  the hosts of the sorted set `warm` ('' none) with the most ready warm
  containers, then the load order (the least-loaded host alone first, as it
  usually has room, then eight at a time). The count checked is the host's
  score in `load`: every script that changes a host's sandbox set sets the
  score from it in the same step, so the score is the set's size without
  reading the set; a draining host is out of `load` and gets nothing.
  Returns {host id, address, manager URL}, or nil when no host has room.
]]
local function findSlot(p, load, id, excluded, preferred, warm)
  local function take(h, n)
    if excluded[h] or redis.call('EXISTS', p .. ':alive:' .. h) == 0 then return nil end
    local host = redis.call('HMGET', p .. ':host:' .. h, 'capacity', 'address', 'managerUrl')
    local capacity = tonumber(host[1])
    if not (capacity and host[2] and host[3] and n < capacity) then return nil end
    if redis.call('SADD', p .. ':host:' .. h .. ':sandboxes', id) == 0 then return nil end
    redis.call('ZADD', load, n + 1, h)
    return { h, host[2], host[3] }
  end
  local function try(h)
    local score = redis.call('ZSCORE', load, h)
    if score then return take(h, tonumber(score)) end
    return nil
  end
  if preferred ~= '' then
    local got = try(preferred)
    if got then return got end
  elseif warm ~= '' then
    for _, h in ipairs(redis.call('ZREVRANGEBYSCORE', warm, '+inf', 1, 'LIMIT', 0, 4)) do
      local got = try(h)
      if got then return got end
    end
  end
  local start, size = 0, 1
  while true do
    local batch = redis.call('ZRANGE', load, start, start + size - 1, 'WITHSCORES')
    if #batch == 0 then return nil end
    for i = 1, #batch, 2 do
      local got = take(batch[i], tonumber(batch[i + 1]))
      if got then return got end
    end
    start = start + size
    size = 8
  end
end
