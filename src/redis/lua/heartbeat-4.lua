--[[
  A manager's heartbeat: its host is alive for another TTL, its record is
  current, and it is in the index of hosts. It writes only the manager's own
  keys: the master admits a host it sees in the index into the load sorted
  set (admitHosts), counted from what the master placed on it.

  KEYS[1] alive  string with an expiry
  KEYS[2] host   hash: address, managerUrl, capacity, startedAt, heartbeatTtlMs
                 (the master waits that long after its own Redis connection
                 comes back before it judges a heartbeat lapsed)
  KEYS[3] hosts  set: every registered host id
  KEYS[4] beats  sorted set: host id -> when its heartbeat lapses (ms, by
                 Redis's clock): the master looks only at hosts past it
  ARGV[1] ttl in ms
  ARGV[2] host id
  ARGV[3] address
  ARGV[4] manager URL
  ARGV[5] capacity
  ARGV[6] startedAt (ISO time; kept when already set)

  Returns 1.
]]
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('HSET', KEYS[2], 'address', ARGV[3], 'managerUrl', ARGV[4], 'capacity', ARGV[5], 'heartbeatTtlMs', ARGV[1])
redis.call('HSETNX', KEYS[2], 'startedAt', ARGV[6])
redis.call('HDEL', KEYS[2], 'stoppedAtMs')
redis.call('SADD', KEYS[3], ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]), ARGV[2])
return 1
