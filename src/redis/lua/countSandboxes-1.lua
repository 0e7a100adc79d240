--[[
  One page of the master's recount of the counts by state: each of these
  sandboxes that is not counted yet (its record written by a master of an
  earlier version, before there were counts) is counted in its state.
  One page per call, so Redis is never held for a whole index of 100,000;
  setState makes it safe to interleave with any state change (a record is
  counted once, by whichever reaches it first) and to repeat.

  KEYS[1] counts  hash: state -> sandboxes in it
  ARGV[1] key prefix, e.g. omega:{hosts}
  ARGV[2..] sandbox ids (an id with no record is skipped)

  Returns how many records it counted.
]]
--@include lib/setState.lua

local n = 0
for i = 2, #ARGV do
  local sandbox = ARGV[1] .. ':sandbox:' .. ARGV[i]
  local rec = redis.call('HMGET', sandbox, 'state', 'counted')
  if rec[1] and not rec[2] then
    setState(sandbox, KEYS[1], rec[1])
    n = n + 1
  end
end
return n
