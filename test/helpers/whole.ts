import Docker from 'dockerode';
import type { RedisClient as Redis } from '../../src/redis/connection.js';
import { LABELS } from '../../manager/runtime/docker.js';
import type { ContainerEntry } from '../../src/protocol/manager.js';
import type { SandboxView } from '../../src/protocol/master.js';
import { dnsKeys, hostKeys } from '../../src/redis/keys.js';
import { dig } from './dns.js';
import { releaseWorkspaceImages } from './docker.js';
import type { Call } from './http.js';

/** What a look at the state covers: one Omega's keys, zone, DNS server, API and hosts. */
export interface Scope {
  prefix: string;
  zone: string;
  dnsPort: number;
  /** The master's API with its token. */
  api: Call;
  hosts: Array<{ hostId: string; address: string }>;
}

/** Omega's containers and volumes (running or not) labelled with one of these hosts. */
export async function dockerState(hostIds: string[], docker = new Docker()): Promise<{ containers: Docker.ContainerInfo[]; volumes: Docker.VolumeInspectInfo[] }> {
  const containers: Docker.ContainerInfo[] = [];
  const volumes: Docker.VolumeInspectInfo[] = [];
  for (const h of hostIds) {
    const label = [`${LABELS.managed}=true`, `${LABELS.host}=${h}`];
    containers.push(...(await docker.listContainers({ all: true, filters: { label } })));
    volumes.push(...((await docker.listVolumes({ filters: { label } })).Volumes ?? []));
  }
  return { containers, volumes };
}

/**
 * Remove every container and volume of these hosts (their managers stopped,
 * or a test's teardown); how many there were. Throws, after trying every
 * one, if any could not be removed.
 */
export async function sweepDocker(hostIds: string[], docker = new Docker()): Promise<{ containers: number; volumes: number }> {
  const { containers, volumes } = await dockerState(hostIds, docker);
  const failed: unknown[] = [];
  for (const c of containers) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch((err: unknown) => failed.push(err));
  // Removing a container frees its volume: list them again.
  for (const v of (await dockerState(hostIds, docker)).volumes) await docker.getVolume(v.Name).remove().catch((err: unknown) => failed.push(err));
  for (const h of hostIds) releaseWorkspaceImages(h);
  if (failed.length) throw new AggregateError(failed, `could not remove ${failed.length} container(s)/volume(s) of ${hostIds.join(', ')}`);
  return { containers: containers.length, volumes: volumes.length };
}

/** What a look at the whole state found: every disagreement, and the counts it saw. */
export interface StateLook {
  problems: string[];
  sandboxes: SandboxView[];
  byState: Record<string, number>;
  /** Per host: its load score, its set's size, running sandboxes and running sandbox containers. */
  hosts: Record<string, { load: number | null; placed: number; running: number; containers: number; pool: number }>;
}

/** Every sandbox the master lists, following the pages. */
export async function listAll(c: Scope): Promise<SandboxView[]> {
  const out: SandboxView[] = [];
  let cursor: string | null = null;
  do {
    const res = await c.api('GET', `/v1/sandboxes?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    if (res.status !== 200) throw new Error(`GET /v1/sandboxes: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...(res.body.sandboxes as SandboxView[]));
    cursor = res.body.nextCursor as string | null;
  } while (cursor);
  return out;
}

async function answers(port: number, name: string): Promise<string[]> {
  const r = await dig(port, [name, 'A']);
  return r.answer.map((l) => l.split(/\s+/).pop()!);
}

/**
 * Whether the state is whole: for every sandbox the master lists (and every
 * record in Redis), a running one has a running container on its host (by
 * its host's container table and Docker) and both names answer with its
 * host's address at the DNS server; a lost one has no names; nothing is
 * creating or deleting; each host's load score equals the sandboxes placed
 * on it, those running there, and the containers running for them; every
 * Omega container of these hosts is a warm one of its host's pool (no more
 * than the pool's size) or a running or lost sandbox's; every volume is a
 * container's or a lost sandbox's kept workspace; every name in the zone is
 * a running sandbox's.
 */
export async function lookAtState(c: Scope, redis: Redis, poolSize: number): Promise<StateLook> {
  const problems: string[] = [];
  const k = hostKeys(c.prefix);
  const listed = await listAll(c);
  const indexed = await redis.zrange(k.sandboxes, '0', '-1');
  const records = new Map<string, Record<string, string>>();
  for (const id of indexed) {
    const h = await redis.hgetall(k.sandbox(id));
    if (h.state) records.set(id, h);
    else problems.push(`${id}: in the index without a record`);
  }
  for (const s of listed) if (!records.has(s.id)) problems.push(`${s.id}: listed ${s.state} by the master, no record`);
  const byState: Record<string, number> = {};
  for (const r of records.values()) byState[r.state!] = (byState[r.state!] ?? 0) + 1;

  const tables = new Map<string, Map<string, ContainerEntry>>();
  for (const h of c.hosts) {
    const raw = await redis.hgetall(k.containers(h.hostId));
    tables.set(h.hostId, new Map(Object.entries(raw).map(([id, json]) => [id, JSON.parse(json) as ContainerEntry])));
  }
  const { containers, volumes } = await dockerState(c.hosts.map((h) => h.hostId));
  const docker = new Map(containers.map((x) => [x.Id, x]));
  const address = new Map(c.hosts.map((h) => [h.hostId, h.address]));

  for (const [id, r] of records) {
    if (r.state === 'creating' || r.state === 'deleting') {
      problems.push(`${id}: ${r.state} (owner ${r.owner ?? 'none'}) on ${r.host}`);
      continue;
    }
    const row = tables.get(r.host!)?.get(id);
    if (r.state === 'running') {
      const ct = row ? docker.get(row.containerId) : undefined;
      if (!row || row.state !== 'running') problems.push(`${id}: running, its host's table says ${row?.state ?? 'nothing'}`);
      else if (!ct || ct.State !== 'running') problems.push(`${id}: running, its container is ${ct?.State ?? 'gone'}`);
      const want = address.get(r.host!);
      const [name, preview] = await Promise.all([answers(c.dnsPort, `${id}.${c.zone}`), answers(c.dnsPort, `3000.${id}.${c.zone}`)]);
      if (name.join() !== want) problems.push(`${id}: running on ${want}, ${id}.${c.zone} answers [${name.join()}]`);
      if (preview.join() !== want) problems.push(`${id}: running on ${want}, *.${id}.${c.zone} answers [${preview.join()}]`);
    } else if (r.state === 'lost') {
      if ((await answers(c.dnsPort, `${id}.${c.zone}`)).length) problems.push(`${id}: lost, its name still answers`);
    }
  }

  // Rows and containers of each host against the records.
  const owned = new Set<string>();
  const hosts: StateLook['hosts'] = {};
  for (const h of c.hosts) {
    const table = tables.get(h.hostId)!;
    for (const [id, row] of table) {
      const r = records.get(id);
      if (!r || r.host !== h.hostId) problems.push(`${id}: a row on ${h.hostId} (${row.state}) but ${r ? `the record places it on ${r.host}` : 'no record'}`);
      else if (r.state === 'lost' && row.state === 'running') problems.push(`${id}: lost, its row on ${h.hostId} still says running`);
      if (r && (r.state === 'running' || r.state === 'lost')) owned.add(row.containerId);
    }
    const mine = containers.filter((x) => x.Labels[LABELS.host] === h.hostId);
    const running = [...records.values()].filter((r) => r.host === h.hostId && r.state === 'running').length;
    const sandboxContainers = [...table].filter(([id, e]) => records.get(id)?.state === 'running' && docker.get(e.containerId)?.State === 'running').length;
    const pool = mine.filter((x) => !owned.has(x.Id) && x.Labels[LABELS.pool] && !x.Labels[LABELS.sandbox] && x.State === 'running');
    for (const x of mine) {
      if (owned.has(x.Id) || pool.includes(x)) continue;
      problems.push(`${h.hostId}: container ${x.Names[0]} (${x.State}) is no running or lost sandbox's and no warm one`);
    }
    if (pool.length > poolSize) problems.push(`${h.hostId}: ${pool.length} warm containers, the pool is ${poolSize}`);
    const score = await redis.zscore(k.load, h.hostId);
    const placed = await redis.scard(k.sandboxesOn(h.hostId));
    const load = score === null ? null : Number(score);
    hosts[h.hostId] = { load, placed, running, containers: sandboxContainers, pool: pool.length };
    if (load !== placed || load !== running || load !== sandboxContainers) {
      problems.push(`${h.hostId}: load ${load}, placed ${placed}, running ${running}, running sandbox containers ${sandboxContainers}`);
    }
  }

  const kept = new Set([...tables.values()].flatMap((t) => [...t].filter(([id]) => records.get(id)?.state === 'lost').map(([, e]) => e.volume)));
  const mounted = new Set(containers.map((x) => x.Labels[LABELS.volume]));
  for (const v of volumes) if (!mounted.has(v.Name) && !kept.has(v.Name)) problems.push(`volume ${v.Name} is no container's and no lost sandbox's`);

  const zone = await redis.hkeys(dnsKeys(c.prefix).zone);
  for (const name of zone) {
    const id = name.replace(/^\*\./, '');
    if (records.get(id)?.state !== 'running') problems.push(`name ${name} in the zone, its sandbox is ${records.get(id)?.state ?? 'gone'}`);
  }
  return { problems, sandboxes: listed, byState, hosts };
}

/**
 * What is left of the sandboxes: records, index entries, rows, names,
 * non-zero loads, and the containers and volumes of these hosts beyond each
 * one's warm pool (`poolSize`; 0 once the managers are stopped).
 */
export async function leftovers(c: Scope, redis: Redis, poolSize: number): Promise<string[]> {
  const k = hostKeys(c.prefix);
  const left: string[] = [];
  const ids = await redis.zrange(k.sandboxes, '0', '-1');
  if (ids.length) left.push(`${ids.length} sandbox(es) in the index`);
  const records = (await redis.keys(`${k.sandbox('')}*`)).length;
  if (records) left.push(`${records} sandbox record(s)`);
  for (const h of c.hosts) {
    const load = await redis.zscore(k.load, h.hostId);
    if (load !== null && load !== '0') left.push(`${h.hostId}: load ${load}`);
    const placed = await redis.scard(k.sandboxesOn(h.hostId));
    if (placed) left.push(`${h.hostId}: ${placed} placed`);
    const rows = await redis.hlen(k.containers(h.hostId));
    if (rows) left.push(`${h.hostId}: ${rows} row(s) in its container table`);
  }
  const names = await redis.hlen(dnsKeys(c.prefix).zone);
  if (names) left.push(`${names} name(s) in the zone`);
  const { containers, volumes } = await dockerState(c.hosts.map((h) => h.hostId));
  // With no sandbox left, a host's running pool-labelled containers are its warm pool, up to its size.
  const warm = c.hosts.flatMap((h) =>
    containers.filter((x) => x.Labels[LABELS.host] === h.hostId && x.Labels[LABELS.pool] && !x.Labels[LABELS.sandbox] && x.State === 'running').slice(0, poolSize),
  );
  const warmVolumes = new Set(warm.map((x) => x.Labels[LABELS.volume]));
  const others = containers.filter((x) => !warm.includes(x));
  if (others.length) left.push(`${others.length} container(s): ${others.map((x) => `${x.Names[0]} ${x.State}`).join(', ')}`);
  const vols = volumes.filter((v) => !warmVolumes.has(v.Name));
  if (vols.length) left.push(`${vols.length} volume(s): ${vols.map((v) => v.Name).join(', ')}`);
  return left;
}
