import Docker from 'dockerode';
import { LABELS } from '../../manager/runtime/docker.js';
import type { HostInfo, MasterClient } from '../client/master-client.js';
import { forEachLimit } from '../../src/limit.js';
import type { Logger } from '../../src/log.js';

/**
 * Delete every sandbox the master lists, through its API, so each one's
 * container, volume and DNS name go the normal way. Returns how many were
 * deleted; throws when the master cannot be asked.
 */
export async function deleteSandboxes(master: MasterClient, log: Logger): Promise<number> {
  const ids = (await master.list({})).map((s) => s.id);
  if (ids.length === 0) return 0;
  log.info({ count: ids.length }, `deleting ${ids.length} sandbox${ids.length === 1 ? '' : 'es'}`);
  let deleted = 0;
  await forEachLimit(ids, 8, async (id) => {
    try {
      await master.delete(id);
      deleted++;
    } catch (err) {
      log.warn({ sandboxId: id, err: (err as Error).message }, 'could not delete a sandbox');
    }
  });
  return deleted;
}

/** The ids of the hosts the master knows (this `up`'s managers). */
export async function hostIds(master: MasterClient, timeoutMs = 5000): Promise<string[]> {
  return (await master.call<{ hosts: HostInfo[] }>('GET', '/v1/hosts', undefined, timeoutMs)).hosts.map((h) => h.id);
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
