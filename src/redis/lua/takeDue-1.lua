--[[
  Take up to a number of due entries off a schedule (a sorted set of id ->
  when it is due) in one step: each entry goes to exactly one caller of
  several (masters each taking a batch of expired sandboxes get disjoint
  batches), and a batch costs one round trip, not one per id.

  KEYS[1] due  sorted set: id -> due at (ms)
  ARGV[1] now (ms)
  ARGV[2] most entries to take

  Returns the ids taken (removed from the set), the earliest due first.
]]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return ids
