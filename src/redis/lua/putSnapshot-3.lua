--[[
  Record a snapshot of no sandbox (a workspace's, written as it moves to
  another host) whose archive is in the snapshot store, taking it off the
  snapshots being written: unless it is no longer there (its writing took
  so long that the reaper took it for abandoned and removed its archive).

  KEYS[1] snapshot   hash: the snapshot's fields
  KEYS[2] snapshots  sorted set: snapshot id -> created at (ms)
  KEYS[3] snapshotsWriting  sorted set: snapshot id -> by when its writing must end
  ARGV[1] snapshot id
  ARGV[2] created at (ms)
  ARGV[3..] field, value, ... of the snapshot

  Returns 1 when recorded, 0 when abandoned (nothing recorded).
]]
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'createdAtMs', ARGV[2], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
