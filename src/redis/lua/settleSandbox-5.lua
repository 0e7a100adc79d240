--[[
  The last step of a pause or a resume (or of one taken back): from the
  transitional state this master holds to where it ends, only if the
  sandbox is still in it and still this master's (a delete or the
  reconciler may have taken it meanwhile).

    pausing  -> paused   (pausedAtMs set)
    pausing  -> running  (the pause failed: its time left becomes its expiry again)
    resuming -> running  (likewise; the host port may be new: a stopped container started again,
                          or a lost or archived sandbox restored on a host: moveSandbox began it)
    resuming -> paused   (the resume failed: still paused)

  KEYS[1] sandbox  hash
  KEYS[2] expiry   sorted set: sandbox id -> expires at (ms)
  KEYS[3] frozen   sorted set: sandbox id -> paused with memory at (ms)
  KEYS[4] stopped  sorted set: sandbox id -> stopped at (ms) (stopped past OMEGA_STOPPED_SECONDS, it is archived)
  KEYS[5] counts   hash: state -> sandboxes in it (lib/setState.lua)
  ARGV[1] sandbox id
  ARGV[2] expected state ('pausing' or 'resuming')
  ARGV[3] the master that must own it ('' : any, for the reconciler taking over)
  ARGV[4] new state ('paused' or 'running')
  ARGV[5] now (ms)
  ARGV[6..] field, value, ... more fields to set (hostPort, containerId)

  Returns the record as a flat field, value list, or 0 when the sandbox is
  no longer in the expected state or no longer this master's.
]]
--@include lib/setState.lua

if redis.call('HGET', KEYS[1], 'state') ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then return 0 end
setState(KEYS[1], KEYS[5], ARGV[4])
redis.call('HSET', KEYS[1], 'owner', '', 'stateSinceMs', ARGV[5])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[4] == 'running' then
  local expires = tonumber(ARGV[5]) + tonumber(redis.call('HGET', KEYS[1], 'remainingMs') or '0')
  redis.call('HSET', KEYS[1], 'expiresAtMs', tostring(expires))
  redis.call('HDEL', KEYS[1], 'pauseKind', 'pausedAtMs', 'remainingMs', 'movedFrom', 'lostAtMs', 'lostReason')
  redis.call('ZADD', KEYS[2], expires, ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'pausedAtMs', ARGV[5])
  local kind = redis.call('HGET', KEYS[1], 'pauseKind')
  if kind == 'memory' then
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  else
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
  -- A sandbox with a named workspace is never archived: its files stay on its host with the workspace.
  if kind == 'stopped' and not redis.call('HGET', KEYS[1], 'workspace') then
    redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
  else
    redis.call('ZREM', KEYS[4], ARGV[1])
  end
end
return redis.call('HGETALL', KEYS[1])
