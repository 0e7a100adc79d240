--[[
  A manager's change to its own container table, with an event for the
  master when a sandbox's container stopped on its own, in one step (the
  table and the event cannot disagree). The master's reconciler reads the
  stream and is the one that turns the sandbox `lost`.

  KEYS[1] containers  hash: sandbox id -> JSON entry
  KEYS[2] hostEvents  stream: {host, sandbox, state, why}
  ARGV[1] sandbox id
  ARGV[2] the entry as JSON, or '' to remove it
  ARGV[3] host id
  ARGV[4] event state ('' for no event), e.g. exited
  ARGV[5] why
  ARGV[6] approximate number of events to keep

  Returns 1.
]]
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'host', ARGV[3], 'sandbox', ARGV[1], 'state', ARGV[4], 'why', ARGV[5])
end
return 1
