/**
 * Every Redis key Omega uses is named here and nowhere else.
 *
 * `prefix` namespaces a deployment (and each test file); the `{...}` hash tag
 * keeps the keys one Lua script touches in one Redis Cluster slot.
 */
export function dnsKeys(prefix: string) {
  const p = `${prefix}:{dns}`;
  return {
    /** hash: relative name -> JSON record sets of that name, e.g. {"A":{"ttl":60,"values":[...]}} */
    zone: `${p}:zone`,
    /** sorted set (all scores 0): relative names, for ordered prefix listing */
    names: `${p}:names`,
    /** string: the zone's SOA serial, incremented on every change */
    serial: `${p}:serial`,
    /** stream: one entry per change batch {serial, changes: JSON name -> record sets | null} */
    changes: `${p}:changes`,
  } as const;
}

export type DnsKeys = ReturnType<typeof dnsKeys>;

/**
 * Hosts and the sandboxes on them. One hash tag for all of it, so the
 * master's allocation script can read heartbeats and bump counts atomically.
 */
export function hostKeys(prefix: string) {
  const p = hostKeyPrefix(prefix);
  return {
    /** sorted set: host id -> number of sandboxes on it (the allocation order) */
    load: `${p}:load`,
    /** hash: address, managerUrl, capacity, startedAt */
    host: (hostId: string) => `${p}:host:${hostId}`,
    /** string with an expiry: present while the host's manager heart-beats */
    alive: (hostId: string) => `${p}:alive:${hostId}`,
    /** set: ids of the sandboxes running on the host */
    sandboxesOn: (hostId: string) => `${p}:host:${hostId}:sandboxes`,
    /**
     * hash: one sandbox. The master writes host, address, managerUrl, state
     * (creating|running|deleting|lost), template, createdAt, expiresAt,
     * idleSeconds, metadata; the manager adds containerId, hostPort, volume, source.
     */
    sandbox: (id: string) => `${p}:sandbox:${id}`,
    /** sorted set: every sandbox the master knows -> created at (ms), for listing */
    sandboxes: `${p}:sandboxes`,
    /** sorted set: sandbox id -> expires at (ms), for the reaper */
    expiry: `${p}:expiry`,
    /** string with an expiry: a sandbox id recently in use, not to be handed out again while DNS may cache it */
    tomb: (id: string) => `${p}:tomb:${id}`,
    /** string with an expiry: held by the master that is adding a host (one scale-out at a time) */
    scaleOut: `${p}:scaleout`,
  } as const;
}

export type HostKeys = ReturnType<typeof hostKeys>;

/**
 * The common start of every hostKeys() name, for scripts that reach keys by
 * host or sandbox id. They build the names the same way as hostKeys() (a
 * test checks it); all share the `{hosts}` slot, so this is Cluster-safe.
 */
export function hostKeyPrefix(prefix: string): string {
  return `${prefix}:{hosts}`;
}
