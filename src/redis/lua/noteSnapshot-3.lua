--[[
  Record a snapshot whose archive is in the snapshot store, and make it its
  sandbox's latest (what a lost or archived sandbox is restored from) unless
  that sandbox is gone or being deleted meanwhile: a delete that began
  removes the latest snapshot it read, and one written after must not be
  pointed at by a record that is going away (the caller removes it).

  KEYS[1] snapshot   hash: the snapshot's fields
  KEYS[2] snapshots  sorted set: snapshot id -> created at (ms)
  KEYS[3] sandbox    hash: the sandbox it was taken of
  ARGV[1] snapshot id
  ARGV[2] created at (ms)
  ARGV[3..] field, value, ... of the snapshot

  Returns the id of the snapshot that was the sandbox's latest before ('' for
  none), or 0 when the sandbox is gone or deleting (nothing recorded).
]]
local state = redis.call('HGET', KEYS[3], 'state')
if not state or state == 'deleting' then return 0 end
redis.call('HSET', KEYS[1], 'createdAtMs', ARGV[2], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local before = redis.call('HGET', KEYS[3], 'snapshot') or ''
redis.call('HSET', KEYS[3], 'snapshot', ARGV[1])
return before
