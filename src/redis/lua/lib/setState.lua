--[[
  Shared by every script that changes a sandbox's state, creates its record
  or removes it, included where they say `--@include lib/setState.lua`.

  setState(sandbox, counts, state): the sandbox's `state` becomes `state`
  (false: its record is about to go, the caller deletes it), and in the
  same step one count moves in the hash `counts` (state -> sandboxes in it)
  from its old state to the new one, so that /metrics reads a few numbers
  instead of every record. Changing `state` any other way would leave the
  counts wrong: this is the one place that writes it.

  A record carries `counted` = '1' once its state is in the counts. Records
  a master of an earlier version wrote have none: nothing is taken from
  their old state (it was never added), the new one is added and the record
  marked. The master's one-time recount (countSandboxes-1.lua) calls this
  with the state a record already has, which counts an unmarked record and
  leaves a marked one alone. So each record is in the counts exactly once,
  whichever of the two reaches it first.
]]
local function setState(sandbox, counts, state)
  local rec = redis.call('HMGET', sandbox, 'state', 'counted')
  if rec[1] and rec[2] then
    if rec[1] == state then return end
    redis.call('HINCRBY', counts, rec[1], -1)
  end
  if state then
    redis.call('HSET', sandbox, 'state', state, 'counted', '1')
    redis.call('HINCRBY', counts, state, 1)
  end
end
