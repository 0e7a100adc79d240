import Docker from 'dockerode';
import { LABELS } from '../../manager/runtime/docker.js';
import type { Logger } from '../log.js';

interface Listed {
  sandboxes: { id: string }[];
  nextCursor: string | null;
}

/**
 * Delete every sandbox the master lists, through its API, so each one's
 * container, volume and DNS name go the normal way. Returns how many were
 * deleted; throws when the master cannot be asked.
 */
export async function deleteSandboxes(masterUrl: string, token: string, log: Logger): Promise<number> {
  const headers = { authorization: `Bearer ${token}` };
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res = await fetch(`${masterUrl}/v1/sandboxes?limit=1000${q}`, { headers, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`listing sandboxes: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as Listed;
    ids.push(...page.sandboxes.map((s) => s.id));
    cursor = page.nextCursor;
  } while (cursor);
  if (ids.length === 0) return 0;
  log.info({ count: ids.length }, `deleting ${ids.length} sandbox${ids.length === 1 ? '' : 'es'}`);
  let deleted = 0;
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: Math.min(8, ids.length) }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const res = await fetch(`${masterUrl}/v1/sandboxes/${id}`, { method: 'DELETE', headers, signal: AbortSignal.timeout(30_000) }).catch((err: Error) => err);
        if (res instanceof Error || !res.ok) log.warn({ sandboxId: id, err: res instanceof Error ? res.message : res.status }, 'could not delete a sandbox');
        else deleted++;
      }
    }),
  );
  return deleted;
}

/** The ids of the hosts the master knows (this `up`'s managers). */
export async function hostIds(masterUrl: string, token: string): Promise<string[]> {
  const res = await fetch(`${masterUrl}/v1/hosts`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`listing hosts: ${res.status}`);
  return ((await res.json()) as { hosts: { id: string }[] }).hosts.map((h) => h.id);
}

/**
 * The last line of "leaves no container behind": after the managers have
 * stopped, remove whatever Omega container or volume is still labelled with
 * one of this run's hosts (a master that could not be asked, a manager killed
 * mid-create). Returns what was removed.
 */
export async function removeLeftovers(hosts: string[], socketPath: string, log: Logger): Promise<{ containers: number; volumes: number }> {
  const docker = new Docker({ socketPath });
  let containers = 0;
  let volumes = 0;
  for (const host of new Set(hosts)) {
    const label = [`${LABELS.managed}=true`, `${LABELS.host}=${host}`];
    for (const c of await docker.listContainers({ all: true, filters: { label } })) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).then(
        () => containers++,
        (err: Error) => log.warn({ container: c.Id.slice(0, 12), err: err.message }, 'could not remove a container'),
      );
    }
    for (const v of (await docker.listVolumes({ filters: { label } })).Volumes ?? []) {
      await docker.getVolume(v.Name).remove().then(
        () => volumes++,
        (err: Error) => log.warn({ volume: v.Name, err: err.message }, 'could not remove a volume'),
      );
    }
  }
  if (containers || volumes) log.warn({ containers, volumes }, 'removed containers and volumes left behind');
  return { containers, volumes };
}
