--[[
  Take an empty host out of allocation before it is terminated (scale-in):
  only if nothing is on it, it is marked draining in the same step, so no
  create can land on it between the check and the mark.

  KEYS[1] host         hash: the host's record
  KEYS[2] sandboxesOn  set: ids of the sandboxes on the host

  Returns 1 if drained, 0 if the host has sandboxes (or no record).
]]
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SCARD', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'draining', '1')
return 1
