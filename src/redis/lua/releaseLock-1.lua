--[[
  Give a lock back, only if it is still the caller's: one that lapsed and
  was taken by another is left to its new holder.

  KEYS[1] lock  string: the holder's token
  ARGV[1] the caller's token

  Returns 1 if released, 0 if the lock was not the caller's (or is gone).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
