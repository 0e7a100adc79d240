--[[
  A manager's heartbeat: its host is alive for another TTL, its record is
  current, and it is in the load sorted set with its true count. Putting it
  back in the set each beat means a host the master gave up on (heartbeat
  lapsed, host forgotten) rejoins by itself when it comes back, counted from
  what is recorded on it, never twice.

  KEYS[1] alive        string with an expiry
  KEYS[2] load         sorted set: host id -> sandbox count
  KEYS[3] sandboxesOn  set: ids of the sandboxes on the host
  KEYS[4] host         hash: address, managerUrl, capacity, startedAt
  ARGV[1] ttl in ms
  ARGV[2] host id
  ARGV[3] address
  ARGV[4] manager URL
  ARGV[5] capacity
  ARGV[6] startedAt (ISO time; kept when already set)

  Returns the host's count.
]]
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('HSET', KEYS[4], 'address', ARGV[3], 'managerUrl', ARGV[4], 'capacity', ARGV[5])
redis.call('HSETNX', KEYS[4], 'startedAt', ARGV[6])
local n = redis.call('SCARD', KEYS[3])
redis.call('ZADD', KEYS[2], n, ARGV[2])
return n
