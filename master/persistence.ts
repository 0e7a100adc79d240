import { OmegaError, isOmegaError } from '../src/errors.js';
import { newSandboxId } from '../src/ids.js';
import type { Logger } from '../src/log.js';
import type { SnapshotKind, SnapshotView } from '../src/protocol/master.js';
import type { SnapshotStore } from '../src/snapshot-store.js';
import type { ManagerClient } from './clients.js';
import { UpstreamError } from './clients.js';
import type { MasterConfig } from './config.js';
import type { Scaler } from './scaler.js';
import type { SandboxRecord, Store } from './store.js';
import { describe, type Sandboxes } from './sandboxes.js';

/** The sandbox was no longer lost or archived when a restore came to take it (moveSandbox's answer). */
class NotMovable {
  constructor(readonly state: SandboxRecord['state'] | 'archived' | null) {}
}

/** Hosts tried for one restore before giving up. */
const MAX_ATTEMPTS = 3;

/** How long a manager has to write a snapshot before the call is given up. */
const SNAPSHOT_CALL_MS = 600_000;
/**
 * By when a snapshot's writing has ended one way or the other: past it, its
 * archive is taken for abandoned (its master gone) and removed. Twice the
 * call's time: a manager still writing after its caller gave up is done by then.
 */
const WRITING_DEADLINE_MS = 2 * SNAPSHOT_CALL_MS;

/**
 * The work that outlives a sandbox's container: snapshots (asked for,
 * periodic, and the archive of a sandbox stopped too long), and restoring a
 * lost or archived sandbox onto a host with room from its latest snapshot,
 * under its own id, name and token.
 *
 * A restore is a move, in the steps of moveSandbox-1.lua: begin (Lua: lost
 * or archived -> resuming on a host, a slot taken, owned), the manager
 * creates it there from the snapshot with its token while the DNS server
 * points its names at that host, then settle (resuming -> running). A step
 * that fails goes back (Lua: the state it came from, the slot given back)
 * after removing what it started; a master that dies meanwhile leaves it to
 * the reconciler, which reads the host's row to tell which way it went.
 */
export class Persistence {
  constructor(
    private readonly config: MasterConfig,
    private readonly store: Store,
    private readonly managers: ManagerClient,
    private readonly sandboxes: Sandboxes,
    private readonly scaler: Scaler,
    private readonly log: Logger,
    /** Where snapshots' archives are (to delete them); the managers write and read them. */
    private readonly archives: SnapshotStore | null,
  ) {}

  /**
   * Write a running or paused sandbox's workspace to the snapshot store
   * (its host's manager makes the archive; a running sandbox is frozen for
   * that time) and record it as the sandbox's latest. A periodic or archive
   * snapshot it replaces as the latest is removed.
   */
  async snapshot(id: string, kind: SnapshotKind = 'manual', rec?: SandboxRecord): Promise<SnapshotView> {
    const r = rec ?? (await this.store.get(id));
    if (!r || r.internal || r.state === 'deleting') throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    const archiving = kind === 'archive' && r.state === 'pausing';
    if (r.state !== 'running' && r.state !== 'paused' && !archiving) throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} is ${r.state}; a snapshot is taken of a running or paused one`);
    if (r.pauseKind === 'archived' && r.state === 'paused') throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} is archived: its latest snapshot, ${r.snapshot}, is its workspace`);
    const snapId = newSandboxId();
    const t0 = Date.now();
    let written;
    try {
      written = await this.write(snapId, (timeoutMs) => this.managers.snapshot(r.managerUrl, id, snapId, timeoutMs));
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      // Deleted meanwhile (its container removed under the snapshot): that is what failed it.
      const now = await this.store.get(id);
      if (err.code === 'SANDBOX_NOT_FOUND' || !now || now.state === 'deleting') throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while its snapshot was taken`, { cause: err });
      throw new OmegaError('SNAPSHOT_FAILED', err.upstreamMessage, { cause: err });
    }
    const view: SnapshotView = { id: snapId, sandboxId: id, template: r.template, bytes: written.bytes, createdAt: new Date().toISOString(), kind, ...(r.workspace ? { workspace: r.workspace } : {}) };
    let noted;
    try {
      noted = await this.store.noteSnapshot(view, r.host);
    } catch (err) {
      // Not recorded: nobody could find the archive again.
      await this.removeArchive(snapId);
      throw err;
    }
    if ('refused' in noted) {
      if (noted.refused === 'abandoned') throw new OmegaError('SNAPSHOT_FAILED', `the snapshot of ${id} took past its deadline and was given up; its archive is removed`);
      await this.removeArchive(snapId);
      if (noted.refused === 'gone') throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while its snapshot was taken`);
      throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} was lost or moved off ${r.host} while its snapshot was taken there; it is not kept`);
    }
    const { before } = noted;
    // Of a sandbox with a named workspace: the workspace's latest too (what it comes back from when its host is gone).
    const wsBefore = r.workspace ? await this.store.changeWorkspace(r.workspace, 'snapshot', snapId) : '';
    if (before) await this.dropIfOwned(before);
    if (typeof wsBefore === 'string' && wsBefore && wsBefore !== 'missing' && wsBefore !== before) await this.dropIfOwned(wsBefore);
    this.log.info({ sandboxId: id, snapshot: snapId, kind, bytes: written.bytes, ms: Date.now() - t0 }, 'snapshot taken');
    return view;
  }

  /** Remove a snapshot's archive, then its record; false when there was none. Idempotent. */
  async deleteSnapshot(id: string): Promise<boolean> {
    const snap = await this.store.getSnapshot(id);
    if (!snap) return false;
    if (!this.archives) throw new OmegaError('SNAPSHOT_FAILED', 'this master has no snapshot store');
    try {
      await this.archives.delete(id);
    } catch (err) {
      throw new OmegaError('SNAPSHOT_FAILED', `removing snapshot ${id} from ${this.archives.shown} failed: ${(err as Error).message}`, { cause: err });
    }
    return this.store.forgetSnapshot(id);
  }

  /**
   * A snapshot that belongs to what it was taken of (periodic, archive,
   * workspace) removed once nothing needs it: not while it is a named
   * workspace's latest. One asked for stays.
   */
  async dropIfOwned(snapId: string): Promise<void> {
    const s = await this.store.getSnapshot(snapId);
    if (!s || s.kind === 'manual') return;
    if (s.workspace && (await this.store.getWorkspace(s.workspace))?.snapshot === snapId) return;
    try {
      await this.deleteSnapshot(snapId);
    } catch (err) {
      this.log.warn({ snapshot: snapId, err: describe(err) }, 'an old snapshot could not be removed; the reconciler retries');
    }
  }

  /**
   * Have a manager write snapshot `snapId` (`ask`, given the call's time),
   * entered in `snapshots-writing` first: until it is recorded or removed,
   * that entry owns its archive. When the manager answers that it failed,
   * nothing of it is kept (a manager of this version removed it itself); a
   * call with no answer (a timeout, a lost connection) may still be writing
   * there, and removing it now could come before the write: the reaper
   * removes it past its deadline. The error is the call's, as it came.
   */
  async write(snapId: string, ask: (timeoutMs: number) => Promise<{ bytes: number }>): Promise<{ bytes: number }> {
    await this.store.startSnapshot(snapId, Date.now() + WRITING_DEADLINE_MS);
    try {
      return await ask(SNAPSHOT_CALL_MS);
    } catch (err) {
      if (err instanceof UpstreamError) await this.removeArchive(snapId);
      throw err;
    }
  }

  /** Remove the archive of a snapshot being written that is not recorded; one that cannot be is left to the reaper (sweepAbandoned). */
  private async removeArchive(snapId: string): Promise<void> {
    if (!this.archives) return;
    try {
      await this.archives.delete(snapId);
    } catch (err) {
      this.log.warn({ err, snapshot: snapId }, 'an unrecorded snapshot archive stays in the store until the reaper removes it');
      return;
    }
    await this.store.endSnapshot(snapId);
  }

  /**
   * Archives whose writing was never recorded nor removed (their master
   * died, or never heard back) past their deadline: each removed by the one
   * master that takes it; one that cannot be is tried again a minute later.
   */
  async sweepAbandoned(limit = 50): Promise<string[]> {
    if (!this.archives) return [];
    const removed: string[] = [];
    for (const snapId of await this.store.abandonedSnapshots(Date.now(), limit)) {
      if (!(await this.store.claimAbandoned(snapId))) continue;
      try {
        await this.archives.delete(snapId);
        removed.push(snapId);
      } catch (err) {
        await this.store.startSnapshot(snapId, Date.now() + 60_000);
        this.log.warn({ err: describe(err), snapshot: snapId }, 'removing an abandoned snapshot archive failed; tried again in a minute');
      }
    }
    if (removed.length) this.log.info({ snapshots: removed }, 'abandoned snapshot archives removed');
    return removed;
  }

  /**
   * Archive a sandbox stopped too long: its workspace to the snapshot store,
   * then its container and volume removed from its host (the disk and the
   * slot freed) and its names with them. It stays `paused` (kind
   * `archived`) until resumed on a host with room, or deleted.
   */
  async archive(id: string): Promise<boolean> {
    // A named workspace's files stay on its host with it (its volume outlives the container): nothing to free.
    if ((await this.store.get(id))?.workspace) return false;
    const begun = await this.store.beginPause(id, 'pause', 'archived');
    if (!('record' in begun)) return false;
    const r = begun.record;
    const log = this.log.child({ sandboxId: id });
    try {
      await this.snapshot(id, 'archive', r);
    } catch (err) {
      await this.store.settle(id, 'pausing', 'paused', { pauseKind: 'stopped' }).catch((e: unknown) => log.warn({ err: e }, 'could not take a failed archive back; the reconciler does'));
      throw err;
    }
    // From here on the archive is its workspace: a failure below is finished by the reconciler, never taken back.
    await Promise.all([this.managers.delete(r.managerUrl, id), r.dns ? this.sandboxes.removeNamesOnly(id) : Promise.resolve()]);
    const done = await this.store.move(id, 'archive');
    if (!('record' in done)) throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while it was archived`);
    log.info('sandbox archived');
    return true;
  }

  /**
   * Bring a lost or archived sandbox back on a host with room (`preferred`
   * first: where it was), from its latest snapshot, with its id, name and
   * token. A running one is a no-op.
   */
  async restore(id: string, preferred = ''): Promise<SandboxRecord> {
    const r = await this.store.get(id);
    if (!r || r.internal || r.state === 'deleting') throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    if (r.state === 'running') return r;
    if (!r.snapshot) throw new OmegaError('SNAPSHOT_NOT_FOUND', `sandbox ${id} is ${r.state} and has no snapshot to come back from (OMEGA_SNAPSHOT_INTERVAL_SECONDS takes them)`);
    if (!r.token) throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} was made before restores kept its token; it cannot come back`);
    const excluded: string[] = r.state === 'lost' && r.lostReason === 'host lost' ? [r.host] : [];
    let lastError: unknown = null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let slot;
      try {
        slot = await this.scaler.allocate(async () => {
          const got = await this.store.move(id, 'begin', this.store.masterId, preferred, excluded);
          if (got === 'no-room') return null;
          if ('state' in got) throw new NotMovable(got.state);
          return got.slot;
        });
      } catch (err) {
        if (!(err instanceof NotMovable)) throw err;
        // Restored meanwhile (by another master): a no-op; in another change: busy, or gone.
        const now = await this.store.get(id);
        if (now?.state === 'running') return now;
        throw this.sandboxes.notPausable(id, err.state === 'archived' ? 'paused' : err.state, 'resumed');
      }
      const log = this.log.child({ sandboxId: id, host: slot.hostId });
      const [started, named] = await Promise.allSettled([
        this.managers.create(
          slot.managerUrl,
          { id, template: r.template, token: r.token, snapshot: r.snapshot, ...(r.workspace ? { workspace: r.workspace } : {}), ...(r.internet === false ? { internet: false as const } : {}), ...(r.env ? { env: r.env } : {}), ...(r.autoResume ? { autoResume: true as const } : {}), ...(r.publicPreviews ? { publicPreviews: true as const } : {}) },
          this.config.createTimeoutMs,
        ),
        this.sandboxes.writeNames({ id, address: slot.address }),
      ]);
      if (started.status === 'fulfilled' && named.status === 'fulfilled') {
        const info = started.value;
        const done = await this.store.settle(id, 'resuming', 'running', { hostPort: String(info.hostPort), containerId: info.containerId, ingressPort: info.ingressPort ? String(info.ingressPort) : '', ...(info.size ? { size: JSON.stringify(info.size) } : {}) });
        if (!done) throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while it was being restored`);
        await this.sandboxes.scheduleSnapshots(id);
        if (r.workspace) await this.sandboxes.workspaces.placed({ workspace: r.workspace }, id, slot.hostId);
        log.info({ from: r.state === 'lost' ? 'lost' : 'archived', snapshot: r.snapshot }, 'sandbox restored from its snapshot');
        return done;
      }
      const failure = started.status === 'rejected' ? started.reason : (named as PromiseRejectedResult).reason;
      lastError = failure;
      log.warn({ err: describe(failure) }, 'restoring the sandbox on this host failed');
      await this.back(id, slot.managerUrl, log);
      const code = failure instanceof UpstreamError ? failure.code : isOmegaError(failure) ? failure.code : '';
      if (code === 'SNAPSHOT_FAILED' || code === 'SNAPSHOT_NOT_FOUND' || code === 'DNS_UNAVAILABLE') break;
      excluded.push(slot.hostId);
    }
    if (lastError instanceof UpstreamError) throw new OmegaError(lastError.code === 'SNAPSHOT_NOT_FOUND' ? 'SNAPSHOT_NOT_FOUND' : lastError.code === 'SNAPSHOT_FAILED' ? 'SNAPSHOT_FAILED' : 'MANAGER_UNAVAILABLE', lastError.upstreamMessage, { cause: lastError });
    throw isOmegaError(lastError) ? lastError : new OmegaError('MANAGER_UNAVAILABLE', `no host could restore the sandbox: ${describe(lastError)}`, { cause: lastError });
  }

  /** Undo a restore begun on a host: what it started there and its names removed, then the record back where it was. */
  async back(id: string, managerUrl: string, log: Logger, owner?: string): Promise<void> {
    try {
      await Promise.all([this.managers.delete(managerUrl, id), this.sandboxes.removeNamesOnly(id)]);
      await this.store.move(id, 'back', owner);
    } catch (err) {
      log.warn({ err: describe(err) }, 'undoing a restore failed; the reconciler finishes it');
    }
  }

  /** Of these running sandboxes, those off the periodic schedule put back on it (none when it is off); their ids. */
  async reschedule(ids: string[]): Promise<string[]> {
    const intervalMs = this.config.snapshotIntervalSeconds * 1000;
    if (!intervalMs || !this.archives || !ids.length) return [];
    const off = await this.store.offSchedule(ids);
    for (const id of off) await this.store.scheduleSnapshot(id, Date.now() + intervalMs);
    return off;
  }

  /**
   * Take the periodic snapshots that are due (OMEGA_SNAPSHOT_INTERVAL_SECONDS),
   * each by one master: the one whose claim moves it to its next time.
   * Paused sandboxes are skipped (their files do not change); a sandbox that
   * is gone leaves the schedule.
   */
  async takeDue(): Promise<string[]> {
    const intervalMs = this.config.snapshotIntervalSeconds * 1000;
    if (!intervalMs || !this.archives) return [];
    const now = Date.now();
    const taken: string[] = [];
    for (const id of await this.store.snapshotsDue(now)) {
      if (!(await this.store.claimSnapshotDue(id, now, now + intervalMs))) continue;
      const r = await this.store.get(id);
      if (!r || r.state === 'deleting') {
        await this.store.unscheduleSnapshot(id);
        continue;
      }
      if (r.state !== 'running') continue;
      try {
        await this.snapshot(id, 'periodic', r);
        taken.push(id);
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'a periodic snapshot failed; retried at its next time');
      }
    }
    return taken;
  }
}
