import { join } from 'node:path';
import Docker from 'dockerode';
import { DEFAULT_WORKSPACE_IMAGE_DIR, WorkspaceDisks } from '../../manager/runtime/disk.js';
import { LABELS } from '../../manager/runtime/docker.js';
import type { HostInfo, MasterClient } from '../client/master-client.js';
import { forEachLimit } from '../../src/limit.js';
import type { Logger } from '../../src/log.js';

/**
 * Delete every sandbox the master lists, through its API, so each one's
 * container, volume and DNS name go the normal way. Returns how many were
 * deleted, how many could not be (each logged), and the hosts they were on (a lost host's containers are not
 * reached this way: removeLeftovers does it); throws when the master cannot
 * be asked.
 */
export async function deleteSandboxes(master: MasterClient, log: Logger): Promise<{ deleted: number; failed: number; hosts: string[] }> {
  const sandboxes = await master.list({});
  const hosts = [...new Set(sandboxes.map((s) => s.host).filter(Boolean))];
  if (sandboxes.length === 0) return { deleted: 0, failed: 0, hosts };
  log.info({ count: sandboxes.length }, `deleting ${sandboxes.length} sandbox${sandboxes.length === 1 ? '' : 'es'}`);
  let deleted = 0;
  await forEachLimit(sandboxes, 8, async ({ id }) => {
    try {
      await master.delete(id);
      deleted++;
    } catch (err) {
      log.warn({ sandboxId: id, err }, 'could not delete a sandbox');
    }
  });
  return { deleted, failed: sandboxes.length - deleted, hosts };
}

/** The hosts the master knows (this `up`'s managers, and any other in its Redis under its prefix). */
export async function hosts(master: MasterClient, timeoutMs = 5000): Promise<HostInfo[]> {
  return (await master.call<{ hosts: HostInfo[] }>('GET', '/v1/hosts', undefined, timeoutMs)).hosts;
}

/** Their ids. */
export async function hostIds(master: MasterClient, timeoutMs = 5000): Promise<string[]> {
  return (await hosts(master, timeoutMs)).map((h) => h.id);
}

/**
 * The last line of "leaves no container behind": after the managers have
 * stopped, remove whatever Omega container or volume is still labelled with
 * one of this run's hosts (a master that could not be asked, a manager killed
 * mid-create). Returns what was removed.
 */
export async function removeLeftovers(hosts: string[], socketPath: string, log: Logger, imageDir = DEFAULT_WORKSPACE_IMAGE_DIR): Promise<{ containers: number; volumes: number }> {
  const docker = new Docker({ socketPath });
  let containers = 0;
  let volumes = 0;
  for (const host of new Set(hosts)) {
    const label = [`${LABELS.managed}=true`, `${LABELS.host}=${host}`];
    for (const c of await docker.listContainers({ all: true, filters: { label } })) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).then(
        () => containers++,
        (err: Error) => log.warn({ container: c.Id.slice(0, 12), err }, 'could not remove a container'),
      );
    }
    for (const v of (await docker.listVolumes({ filters: { label } })).Volumes ?? []) {
      await docker.getVolume(v.Name).remove().then(
        () => volumes++,
        (err: Error) => log.warn({ volume: v.Name, err }, 'could not remove a volume'),
      );
    }
    // The workspace images of the volumes just removed: their loop devices detached, their files deleted.
    const kept = new Set(((await docker.listVolumes({ filters: { label } })).Volumes ?? []).map((v) => v.Name));
    await new WorkspaceDisks(join(imageDir, host)).sweep(kept, 0).catch((err: unknown) => log.warn({ host, err }, 'could not release the workspace images'));
  }
  if (containers || volumes) log.warn({ containers, volumes }, 'removed containers and volumes left behind');
  return { containers, volumes };
}
