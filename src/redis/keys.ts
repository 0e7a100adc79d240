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
 * master's scripts can read heartbeats and bump counts atomically.
 *
 * Every key has one owner (the only program that writes it):
 *   manager: host, alive, beats, containers, the host index and the host events stream;
 *   master:  hostStatus, lostHosts, load, sandboxesOn, sandbox, sandboxes, counts, expiry, tomb,
 *            scaleOut, sweep, sweepLease, master (each master its own).
 * A reader may read any of them; a writer changes its own only through the
 * scripts in lua/ that check what they expect (a lone HSET of a field no
 * one else reads is the exception).
 */
export function hostKeys(prefix: string) {
  const p = hostKeyPrefix(prefix);
  return {
    /** set (manager): ids of every host that has registered, written by each host's heartbeat */
    hosts: `${p}:hosts`,
    /** hash (manager): address, managerUrl, capacity, startedAt, heartbeatTtlMs, stoppedAtMs (a graceful stop) */
    host: (hostId: string) => `${p}:host:${hostId}`,
    /** string with an expiry (manager): present while the host's manager heart-beats */
    alive: (hostId: string) => `${p}:alive:${hostId}`,
    /**
     * sorted set (managers, each its own member): host id -> when its
     * heartbeat lapses (ms); the master looks only at hosts past it, not at
     * every host each tick (it removes a host it forgets)
     */
    beats: `${p}:beats`,
    /**
     * hash (manager): the host's container table, sandbox id -> JSON
     * {containerId, hostPort, volume, template, source, state (running|exited|removed), createdAtMs, exitedAtMs?}
     */
    containers: (hostId: string) => `${p}:host:${hostId}:containers`,
    /** sorted set (managers, each its own member): host id -> warm containers of the template ready there (placement prefers them) */
    warm: (template: string) => `${p}:warm:${template}`,
    /** stream (managers): {host, sandbox, state, why} when a container of a sandbox stops on its own */
    hostEvents: `${p}:host-events`,
    /** hash (master): what the master decided about a host: draining, lostAtMs */
    hostStatus: (hostId: string) => `${p}:host:${hostId}:status`,
    /** set (master): hosts marked lost (watched for coming back) */
    lostHosts: `${p}:lost-hosts`,
    /** sorted set (master): host id -> number of sandboxes on it (the allocation order) */
    load: `${p}:load`,
    /** set (master): ids of the sandboxes placed on the host */
    sandboxesOn: (hostId: string) => `${p}:host:${hostId}:sandboxes`,
    /** set (master): names of the named workspaces whose volume is on the host (its manager keeps those volumes) */
    workspacesOn: (hostId: string) => `${p}:host:${hostId}:workspaces`,
    /** hash (master): a named workspace: template, host (where its volume is; '' none), sandbox (attached; '' none), snapshot (latest), createdAtMs */
    workspace: (name: string) => `${p}:workspace:${name}`,
    /** sorted set (master): workspace name -> created at (ms), for listing */
    workspaces: `${p}:workspaces`,
    /**
     * hash (master): one sandbox: host, address, managerUrl, state
     * (creating|running|deleting|lost), owner (the master creating or deleting
     * it), template, createdAtMs, stateSinceMs, expiresAtMs, idleSeconds,
     * metadata, internal, dns, hostPort, containerId, lostAtMs, lostReason,
     * counted ('1': its state is in `counts`).
     */
    sandbox: (id: string) => `${p}:sandbox:${id}`,
    /** sorted set (master): every sandbox the master knows -> created at (ms), for listing */
    sandboxes: `${p}:sandboxes`,
    /**
     * hash (master): state -> how many sandboxes are in it, moved by every script that changes a
     * state (lua/lib/setState.lua), for /metrics; recountedAtMs once every record is in it
     */
    counts: `${p}:counts`,
    /** string with an expiry (master): held by the master counting the records no script has counted yet */
    countsLock: `${p}:counts-lock`,
    /** sorted set (master): sandbox id -> expires at (ms), for the reaper */
    expiry: `${p}:expiry`,
    /** sorted set (master): sandbox id -> paused with memory at (ms); frozen past OMEGA_FROZEN_SECONDS, the reaper stops them */
    frozen: `${p}:frozen`,
    /** hash (master): a workspace snapshot: sandboxId, template, bytes, createdAtMs, kind (manual|periodic|archive) (its archive is in the snapshot store under its id) */
    snapshot: (id: string) => `${p}:snapshot:${id}`,
    /** sorted set (master): snapshot id -> created at (ms), for listing */
    snapshots: `${p}:snapshots`,
    /**
     * sorted set (master): snapshot id -> by when its writing must have ended (ms): an archive being written, owned by
     * this entry until recorded; one past its time (its master gone) has its archive removed by the reaper
     */
    snapshotsWriting: `${p}:snapshots-writing`,
    /** sorted set (master): sandbox id -> paused without memory (stopped) at (ms); stopped past OMEGA_STOPPED_SECONDS, the reaper archives them */
    stopped: `${p}:stopped`,
    /** sorted set (master): sandbox id -> when its next periodic snapshot is due (ms), with OMEGA_SNAPSHOT_INTERVAL_SECONDS */
    snapshotDue: `${p}:snapshot-due`,
    /** string with an expiry (master): a sandbox id recently in use, not to be handed out again while DNS may cache it */
    tomb: (id: string) => `${p}:tomb:${id}`,
    /** string with an expiry (master): held by the master that is adding a host (one scale-out at a time) */
    scaleOut: `${p}:scaleout`,
    /**
     * hash (master): where a sweep of the reconciler is (cursor) and when
     * its next cycle may begin (nextCycleAtMs); the masters share one sweep
     */
    sweep: (name: string) => `${p}:sweep:${name}`,
    /** string with an expiry (master): held by the master working a sweep's next page */
    sweepLease: (name: string) => `${p}:sweep:${name}:lease`,
    /** string with an expiry (each master its own): present while that master runs; a create or delete it owns is abandoned once it is gone */
    master: (masterId: string) => `${p}:master:${masterId}`,
  } as const;
}

export type HostKeys = ReturnType<typeof hostKeys>;

/**
 * The certificate every TLS endpoint serves (the master's API, each host's
 * ingress). Written by the master that holds the lock, read by all.
 */
export function tlsKeys(prefix: string) {
  const p = `${prefix}:{tls}`;
  return {
    /** hash (master): bundle (JSON: chain, private key, dates, names), fingerprint, storedAtMs */
    certificate: `${p}:certificate`,
    /** string with an expiry (master): the token of the master ordering or renewing the certificate */
    lock: `${p}:lock`,
    /** string (master): the ACME account's private key (PEM), made once; CAs limit how many accounts are made */
    acmeAccount: `${p}:acme-account`,
  } as const;
}

export type TlsKeys = ReturnType<typeof tlsKeys>;

/**
 * The common start of every hostKeys() name, for scripts that reach keys by
 * host or sandbox id. They build the names the same way as hostKeys() (a
 * test checks it); all share the `{hosts}` slot, so this is Cluster-safe.
 */
export function hostKeyPrefix(prefix: string): string {
  return `${prefix}:{hosts}`;
}
