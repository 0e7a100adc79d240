--[[
  The first step of a pause or a resume, taken by one master only:

    pause:  running -> pausing (its time left kept, out of the expiry index:
            a paused sandbox's time limit is suspended); also paused with
            memory -> pausing to stop it (a sandbox frozen too long); paused
            and stopped -> pausing to archive it (kind 'archived': stopped
            too long, its workspace goes to the snapshot store and
            moveSandbox ends it)
    resume: paused  -> resuming (not an archived one: it has no host to
            resume on; the answer 'archived' sends the caller to moveSandbox)

  The master then asks the host's manager, and settleSandbox ends it. A
  delete (beginDelete) may take the sandbox from any of these states; the
  settle then finds it gone from the one it expects and changes nothing.

  KEYS[1] sandbox  hash
  KEYS[2] expiry   sorted set: sandbox id -> expires at (ms)
  KEYS[3] counts   hash: state -> sandboxes in it (lib/setState.lua)
  ARGV[1] sandbox id
  ARGV[2] 'pause' or 'resume'
  ARGV[3] the calling master's id
  ARGV[4] now (ms)
  ARGV[5] pause kind ('memory', 'stopped' or 'archived'; pause only)
  ARGV[6] the time it has once resumed, in ms, instead of what is left of its
          expiry ('' for that): a sandbox paused by its time limit gets its
          whole lifetime again

  Returns the record as a flat field, value list when the step was taken;
  otherwise the state it is in as a string ('' when there is no record), so
  the caller can tell a no-op (resume of a running one) from a conflict.
]]
--@include lib/setState.lua

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
if ARGV[2] == 'pause' then
  if state == 'paused' and ARGV[5] == 'stopped' and redis.call('HGET', KEYS[1], 'pauseKind') == 'memory' then
    setState(KEYS[1], KEYS[3], 'pausing')
    redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'stateSinceMs', ARGV[4], 'pauseKind', 'stopped')
    return redis.call('HGETALL', KEYS[1])
  end
  if ARGV[5] == 'archived' then
    if state ~= 'paused' or redis.call('HGET', KEYS[1], 'pauseKind') ~= 'stopped' then return state end
    setState(KEYS[1], KEYS[3], 'pausing')
    redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'stateSinceMs', ARGV[4], 'pauseKind', 'archived')
    return redis.call('HGETALL', KEYS[1])
  end
  if state ~= 'running' then return state end
  local left = tonumber(redis.call('HGET', KEYS[1], 'expiresAtMs') or ARGV[4]) - tonumber(ARGV[4])
  if ARGV[6] and ARGV[6] ~= '' then left = tonumber(ARGV[6]) end
  if left < 0 then left = 0 end
  redis.call('ZREM', KEYS[2], ARGV[1])
  setState(KEYS[1], KEYS[3], 'pausing')
  redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'stateSinceMs', ARGV[4], 'pauseKind', ARGV[5], 'remainingMs', tostring(left))
else
  if state ~= 'paused' then return state end
  if redis.call('HGET', KEYS[1], 'pauseKind') == 'archived' then return 'archived' end
  setState(KEYS[1], KEYS[3], 'resuming')
  redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'stateSinceMs', ARGV[4])
end
return redis.call('HGETALL', KEYS[1])
