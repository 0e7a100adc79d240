--[[
  Move a sandbox from one state to another only if it is still in the first
  (a create must not turn a sandbox that was meanwhile lost or deleted back
  into a running one), setting more fields in the same step.

  KEYS[1] sandbox  hash
  KEYS[2] counts   hash: state -> sandboxes in it (lib/setState.lua)
  ARGV[1] expected state(s), comma-separated
  ARGV[2] new state
  ARGV[3..] field, value, ... more fields to set

  Returns 1 if moved, 0 if the sandbox was not in an expected state or is gone.
]]
--@include lib/setState.lua

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then ok = true end
end
if not ok then return 0 end
setState(KEYS[1], KEYS[2], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
