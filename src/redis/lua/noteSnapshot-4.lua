--[[
  Record a snapshot whose archive is in the snapshot store, and make it its
  sandbox's latest (what a lost or archived sandbox is restored from) unless
  that sandbox changed under it meanwhile (nothing recorded; the caller
  removes the archive):
    - gone or being deleted: a delete that began removes the latest snapshot
      it read, and one written after must not be pointed at by a record
      that is going away;
    - lost, or no longer on the host it was taken on: a restore reads the
      latest snapshot it found, which must not be replaced (and removed)
      under it by one from the host it is leaving;
    - no longer being written (-2): its writing took so long that the reaper
      took it for abandoned and removed its archive.

  KEYS[1] snapshot   hash: the snapshot's fields
  KEYS[2] snapshots  sorted set: snapshot id -> created at (ms)
  KEYS[3] sandbox    hash: the sandbox it was taken of
  KEYS[4] snapshotsWriting  sorted set: snapshot id -> by when its writing
                            must end; its entry is taken off once recorded
  ARGV[1] snapshot id
  ARGV[2] created at (ms)
  ARGV[3] the host it was taken on
  ARGV[4..] field, value, ... of the snapshot

  Returns the id of the snapshot that was the sandbox's latest before ('' for
  none); when nothing was recorded, 0 (gone or deleting), -1 (lost or
  moved) or -2 (abandoned). Refused but not abandoned, it stays in KEYS[4]
  until the caller has removed its archive.
]]
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return -2 end
local rec = redis.call('HMGET', KEYS[3], 'state', 'host')
local state = rec[1]
if not state or state == 'deleting' then return 0 end
if state == 'lost' or rec[2] ~= ARGV[3] then return -1 end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'createdAtMs', ARGV[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local before = redis.call('HGET', KEYS[3], 'snapshot') or ''
redis.call('HSET', KEYS[3], 'snapshot', ARGV[1])
return before
