import { OmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { SnapshotStore } from '../src/snapshot-store.js';
import { archiveOrNothing, openVolume, writeArchive } from './runtime/archive.js';
import { bytesUnder } from './runtime/disk.js';
import type { DockerRuntime } from './runtime/docker.js';


/**
 * A named workspace's volume on a host: kept when its sandbox is deleted,
 * removed only when the workspace is. Its name carries the host's id, as
 * every other volume's name is unique to its host (a sandbox id, a pool
 * slot): several hosts may share one engine (tests, `omega up`), and a
 * workspace that moved must not find the volume it left on another host.
 */
const WORKSPACE_VOLUME_PREFIX = 'omega-wsn-';

export function workspaceVolume(hostId: string, name: string): string {
  return `${WORKSPACE_VOLUME_PREFIX}${hostId}-${name}`;
}

export function isWorkspaceVolume(volume: string): boolean {
  return volume.startsWith(WORKSPACE_VOLUME_PREFIX);
}

/**
 * The named workspaces whose volume is on this host (the master places
 * them: its per-host set says which are this host's). A sandbox attached to
 * one mounts that volume instead of a volume of its own; the volume outlives
 * the sandbox, is snapshotted when the workspace moves to another host, and
 * is removed when the workspace is deleted.
 */
export class Workspaces {
  constructor(
    private readonly runtime: DockerRuntime,
    private readonly hostId: string,
    private readonly store: () => SnapshotStore | null,
    private readonly log: Logger,
  ) {}

  /** Write a workspace's volume to the snapshot store as `key` (it is moving to another host); its sandbox, if any, must be gone. */
  async snapshot(name: string, key: string, signal?: AbortSignal): Promise<{ bytes: number }> {
    const store = this.store();
    if (!store) throw new OmegaError('SNAPSHOT_FAILED', 'this host has no snapshot store');
    const volume = workspaceVolume(this.hostId, name);
    if (await this.inUse(volume)) throw new OmegaError('SANDBOX_BUSY', `workspace ${name} is in use by a sandbox on this host`);
    return archiveOrNothing(store, key, async () => {
      const open = await openVolume(await this.info(name), false);
      try {
        return await writeArchive(open.dir, store, key, signal);
      } finally {
        await open.close();
      }
    }, signal);
  }

  /** Remove a workspace's volume (and its filesystem image); false when there was none. Refused while a container uses it. */
  async remove(name: string): Promise<boolean> {
    const volume = workspaceVolume(this.hostId, name);
    if (await this.inUse(volume)) throw new OmegaError('SANDBOX_BUSY', `workspace ${name} is in use by a sandbox on this host`);
    const existed = (await this.runtime.volumes()).some((v) => v.name === volume);
    await this.runtime.removeVolume(volume);
    if (existed) this.log.info({ workspace: name }, 'workspace volume removed');
    return existed;
  }

  /** The workspaces' volumes on this host with the bytes their files take (du), for listing. */
  async list(): Promise<Array<{ name: string; bytes: number }>> {
    const out: Array<{ name: string; bytes: number }> = [];
    for (const v of await this.runtime.volumes()) {
      const mine = workspaceVolume(this.hostId, '');
      if (!v.name.startsWith(mine)) continue;
      const name = v.name.slice(mine.length);
      out.push({ name, bytes: await this.usage(name).catch(() => -1) });
    }
    return out;
  }

  private async usage(name: string): Promise<number> {
    const open = await openVolume(await this.info(name), false);
    try {
      return await bytesUnder(open.dir);
    } finally {
      await open.close();
    }
  }

  private async info(name: string) {
    try {
      return await this.runtime.volumeInfo(workspaceVolume(this.hostId, name));
    } catch (err) {
      if (err instanceof OmegaError && err.code === 'NOT_FOUND') throw new OmegaError('WORKSPACE_NOT_FOUND', `no workspace ${name} on this host`, { cause: err });
      throw err;
    }
  }

  private async inUse(volume: string): Promise<boolean> {
    return (await this.runtime.list()).some((c) => c.labels['omega.volume'] === volume);
  }
}
