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
