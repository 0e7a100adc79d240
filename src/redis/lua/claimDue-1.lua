--[[
  Take a due entry of a schedule (a sorted set of id -> when it is due), so
  that one master of several does the work: the one whose call moves it to
  its next time. Later callers find it no longer due.

  KEYS[1] snapshotDue  sorted set: id -> due at (ms)
  ARGV[1] id
  ARGV[2] now (ms)
  ARGV[3] when it is due next (ms)

  Returns 1 when taken, 0 when it is not due (taken already, or gone).
]]
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
