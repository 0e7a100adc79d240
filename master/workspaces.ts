import { OmegaError } from '../src/errors.js';
import { newSandboxId } from '../src/ids.js';
import type { Logger } from '../src/log.js';
import type { SnapshotView, WorkspaceView } from '../src/protocol/master.js';
import type { ManagerClient } from './clients.js';
import { UpstreamError } from './clients.js';
import type { Persistence } from './persistence.js';
import { describe } from './sandboxes.js';
import type { Store, WorkspaceRecord } from './store.js';

type Slot = { hostId: string; address: string; managerUrl: string };

/** What a create attached to a workspace asks of its host's manager, and what to do once it runs. */
export interface WorkspacePlan {
  /** The manager mounts this workspace's volume (made when new). */
  workspace: string;
  /** Restored into the new volume first: the workspace moved here. */
  snapshot?: string;
  /** The host it moved from, whose volume is removed once it runs here. */
  leftHost?: { hostId: string; managerUrl: string };
}

/**
 * Named workspaces: a volume that outlives its sandboxes, on one host at a
 * time. A create with `workspace` attaches it (Lua: one live sandbox per
 * workspace, across masters), is placed on the host that holds its volume
 * when that host has room (the allocation's preferred host), else moves it:
 * the old host's manager writes the volume to the snapshot store (its
 * latest files) and the new host restores it; when the old host is gone,
 * the workspace comes back from its latest snapshot (periodic snapshots of
 * its sandboxes count). Deleting the sandbox detaches it; deleting the
 * workspace removes its volume and its own snapshots.
 */
export class Workspaces {
  constructor(
    private readonly store: Store,
    private readonly managers: ManagerClient,
    private readonly persistence: Persistence,
    private readonly log: Logger,
  ) {}

  /** Attach the workspace to sandbox `id` (made when new); its record, or the refusal as an error. */
  async attach(name: string, id: string, template: string): Promise<WorkspaceRecord> {
    const r = await this.store.changeWorkspace(name, 'attach', id, template);
    if (typeof r !== 'string') return r;
    if (r.startsWith('busy:')) throw new OmegaError('WORKSPACE_BUSY', `workspace ${name} is attached to sandbox ${r.slice(5)}; delete that sandbox first (one sandbox per workspace at a time)`);
    throw new OmegaError('VALIDATION_FAILED', `workspace ${name} is a ${r.slice(9)} workspace; create a ${r.slice(9)} sandbox with it`);
  }

  /** Give it up from a sandbox that is gone (or whose create was undone). */
  async detach(name: string, id: string): Promise<void> {
    await this.store.changeWorkspace(name, 'detach', id);
  }

  /**
   * What the manager of `slot` needs to give sandbox `id` this workspace's
   * files: its own volume (the workspace is on that host, or new), or its
   * files moved from where they are (the old host alive: written from its
   * volume now; gone: its latest snapshot).
   */
  async plan(ws: WorkspaceRecord, id: string, slot: Slot): Promise<WorkspacePlan> {
    if (!ws.host || ws.host === slot.hostId) return { workspace: ws.name, ...(ws.host ? {} : ws.snapshot ? { snapshot: ws.snapshot } : {}) };
    const oldUrl = await this.store.liveManagerUrl(ws.host);
    if (oldUrl) {
      const snapId = newSandboxId();
      let written;
      try {
        written = await this.persistence.write(snapId, (timeoutMs) => this.managers.snapshotWorkspace(oldUrl, ws.name, snapId, timeoutMs));
      } catch (err) {
        throw new OmegaError('SNAPSHOT_FAILED', `moving workspace ${ws.name} from ${ws.host}: ${err instanceof UpstreamError ? err.upstreamMessage : describe(err)}`, { cause: err });
      }
      const view: SnapshotView = { id: snapId, sandboxId: id, template: ws.template, bytes: written.bytes, createdAt: new Date().toISOString(), kind: 'workspace', workspace: ws.name };
      await this.noteSnapshot(view);
      return { workspace: ws.name, snapshot: snapId, leftHost: { hostId: ws.host, managerUrl: oldUrl } };
    }
    if (!ws.snapshot) throw new OmegaError('WORKSPACE_UNAVAILABLE', `workspace ${ws.name} is on host ${ws.host}, which is gone, and it has no snapshot`);
    this.log.warn({ workspace: ws.name, host: ws.host, snapshot: ws.snapshot }, 'the workspace\'s host is gone; it comes back from its latest snapshot');
    return { workspace: ws.name, snapshot: ws.snapshot };
  }

  /** Sandbox `id` runs with the workspace on its host: the workspace is placed there, and the volume it left removed. */
  async placed(plan: WorkspacePlan, id: string, hostId: string): Promise<void> {
    const r = await this.store.changeWorkspace(plan.workspace, 'place', id, hostId);
    if (typeof r === 'string') throw new OmegaError('WORKSPACE_BUSY', `workspace ${plan.workspace} was taken or deleted while sandbox ${id} was created with it`);
    if (plan.leftHost) {
      await this.managers.deleteWorkspace(plan.leftHost.managerUrl, plan.workspace).catch((err: unknown) =>
        this.log.warn({ workspace: plan.workspace, host: plan.leftHost!.hostId, err: describe(err) }, 'the volume a workspace left stays until that host\'s reconciler removes it'),
      );
    }
  }

  /**
   * Make a snapshot the workspace's latest; the one it replaces is removed
   * when it was the workspace's own. An archive of a workspace deleted
   * meanwhile is removed.
   */
  async noteSnapshot(view: SnapshotView): Promise<void> {
    if (!(await this.store.putSnapshot(view))) throw new OmegaError('SNAPSHOT_FAILED', `moving workspace ${view.workspace}: its snapshot took past its deadline and was given up`);
    const before = await this.store.changeWorkspace(view.workspace!, 'snapshot', view.id);
    if (before === 'missing') {
      await this.persistence.deleteSnapshot(view.id);
      throw new OmegaError('WORKSPACE_NOT_FOUND', `workspace ${view.workspace} was deleted meanwhile`);
    }
    if (typeof before === 'string' && before && before !== view.id) await this.persistence.dropIfOwned(before);
  }

  /** Every workspace, with what its files take on its host (asked of each host that has any). */
  async list(): Promise<WorkspaceView[]> {
    const recs = await this.store.listWorkspaces();
    const sizes = new Map<string, number>();
    await Promise.all(
      [...new Set(recs.flatMap((w) => (w.host ? [w.host] : [])))].map(async (h) => {
        const url = await this.store.liveManagerUrl(h);
        if (!url) return;
        try {
          for (const v of await this.managers.workspaces(url)) if (v.bytes >= 0) sizes.set(`${h}/${v.name}`, v.bytes);
        } catch (err) {
          this.log.warn({ host: h, err: describe(err) }, 'a host did not say its workspaces\' sizes');
        }
      }),
    );
    return recs.map((w) => view(w, w.host ? (sizes.get(`${w.host}/${w.name}`) ?? null) : null));
  }

  /**
   * Delete a workspace everywhere: its record first (no create attaches it
   * after), then its volume on its host and its own snapshots. Refused while
   * a sandbox has it. A host that is away removes the volume itself once it
   * sees the workspace is no longer placed there.
   */
  async delete(name: string): Promise<boolean> {
    const r = await this.store.changeWorkspace(name, 'forget', '');
    if (r === 'missing') return false;
    if (typeof r === 'string') throw new OmegaError('WORKSPACE_BUSY', `workspace ${name} is attached to sandbox ${r.slice(5)}; delete that sandbox first`);
    if (r.host) {
      const url = await this.store.liveManagerUrl(r.host);
      if (url) {
        await this.managers.deleteWorkspace(url, name).catch((err: unknown) =>
          this.log.warn({ workspace: name, host: r.host, err: describe(err) }, 'a deleted workspace\'s volume stays until its host\'s reconciler removes it'),
        );
      }
    }
    if (r.snapshot) await this.persistence.dropIfOwned(r.snapshot);
    this.log.info({ workspace: name }, 'workspace deleted');
    return true;
  }
}

function view(w: WorkspaceRecord, bytes: number | null): WorkspaceView {
  return { name: w.name, template: w.template, host: w.host, sandbox: w.sandbox, snapshot: w.snapshot, bytes, createdAt: new Date(w.createdAtMs).toISOString() };
}
