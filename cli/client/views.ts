import type { Created, HostInfo, SandboxView, SnapshotView, WorkspaceView } from './master-client.js';
import { renderFields, renderTable, shortDuration, type Color, type Column } from './table.js';

/** What people read; scripts use --json, which is the master's JSON unchanged. */

const stateColor = (state: string): Color | undefined =>
  ({ running: 'green', creating: 'yellow', pausing: 'yellow', paused: 'dim', resuming: 'yellow', deleting: 'yellow', lost: 'red' } as Record<string, Color>)[state];

const healthColor = (health: string): Color | undefined => ({ alive: 'green', draining: 'yellow', stopped: 'yellow', lost: 'red' } as Record<string, Color>)[health];

const ago = (iso: string | null, now: number) => (iso ? `${shortDuration(now - Date.parse(iso))} ago` : '-');

const timeLeft = (iso: string, now: number) => {
  const ms = Date.parse(iso) - now;
  return ms > 0 ? shortDuration(ms) : 'expired';
};

export const TOKEN_HIDDEN = 'not shown: a secret the master gives only at create; create with --show-token or --json to see it';

export function sandboxTable(sandboxes: SandboxView[], opts: { color: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const columns: Column<SandboxView>[] = [
    { header: 'ID', value: (s) => s.id },
    { header: 'TEMPLATE', value: (s) => s.template },
    { header: 'STATE', value: (s) => s.state, color: (s) => stateColor(s.state) },
    { header: 'HOST', value: (s) => s.host || '-' },
    { header: 'HOSTNAME:PORT', value: (s) => (s.port ? `${s.hostname}:${s.port}` : s.hostname) },
    { header: 'AGE', value: (s) => shortDuration(now - Date.parse(s.createdAt)) },
    { header: 'EXPIRES IN', value: (s) => timeLeft(s.expiresAt, now) },
  ];
  return renderTable(sandboxes, columns, opts);
}

/** One sandbox, a field a line; with `token` only when the caller chose to show it. */
export function sandboxFields(s: SandboxView | Created, opts: { color: boolean; token?: 'show' | 'hide'; now?: number }): string {
  const now = opts.now ?? Date.now();
  const fields: Array<[string, string, Color?]> = [
    ['id', s.id, 'bold'],
    ['state', s.state, stateColor(s.state)],
    ['template', s.template],
    ['hostname', s.hostname],
    ['port', s.port === null ? '-' : String(s.port)],
    ['url', s.url ?? '-'],
    ['host', s.address && s.address !== s.host ? `${s.host} (${s.address})` : s.host || '-'],
    ['created', `${s.createdAt} (${ago(s.createdAt, now)})`],
    ['expires', `${s.expiresAt} (${Date.parse(s.expiresAt) > now ? `in ${shortDuration(Date.parse(s.expiresAt) - now)}` : 'expired'})`],
  ];
  if (s.state === 'paused' && s.paused) fields.push(['paused', `${s.paused.kind === 'memory' ? 'frozen in memory' : s.paused.kind === 'stopped' ? 'stopped, files kept' : 'archived to the snapshot store'} since ${s.paused.since} (${ago(s.paused.since, now)}); ${shortDuration(s.paused.remainingSeconds * 1000)} left once resumed`]);
  if (s.state === 'lost' && s.lostAt) fields.push(['lost', `${s.lostAt} (${ago(s.lostAt, now)}): ${s.lostReason ?? 'unknown'}`, 'red']);
  if (s.workspace) fields.push(['workspace', s.workspace]);
  if (s.idleSeconds !== null) fields.push(['idle', `deleted after ${shortDuration(s.idleSeconds * 1000)} without activity`]);
  const meta = Object.entries(s.metadata ?? {});
  if (meta.length) fields.push(['metadata', meta.map(([k, v]) => `${k}=${v}`).join(' ')]);
  if ('source' in s) fields.push(['source', s.source === 'pool' ? 'warm pool' : 'cold start']);
  if (opts.token === 'show' && 'token' in s) fields.push(['token', s.token]);
  else if (opts.token === 'hide') fields.push(['token', TOKEN_HIDDEN, 'dim']);
  return renderFields(fields, opts);
}

export function snapshotTable(snapshots: SnapshotView[], opts: { color: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const columns: Column<SnapshotView>[] = [
    { header: 'ID', value: (s) => s.id },
    { header: 'SANDBOX', value: (s) => s.sandboxId },
    { header: 'TEMPLATE', value: (s) => s.template },
    { header: 'SIZE', value: (s) => humanBytes(s.bytes), align: 'right' },
    { header: 'AGE', value: (s) => ago(s.createdAt, now) },
  ];
  return renderTable(snapshots, columns, opts);
}

export function workspaceTable(workspaces: WorkspaceView[], opts: { color: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const columns: Column<WorkspaceView>[] = [
    { header: 'NAME', value: (w) => w.name },
    { header: 'TEMPLATE', value: (w) => w.template },
    { header: 'HOST', value: (w) => w.host ?? '-' },
    { header: 'SANDBOX', value: (w) => w.sandbox ?? '-' },
    { header: 'SIZE', value: (w) => (w.bytes === null ? '-' : humanBytes(w.bytes)), align: 'right' },
    { header: 'SNAPSHOT', value: (w) => w.snapshot ?? '-' },
    { header: 'AGE', value: (w) => ago(w.createdAt, now) },
  ];
  return renderTable(workspaces, columns, opts);
}

export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function hostTable(hosts: HostInfo[], opts: { color: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const columns: Column<HostInfo>[] = [
    { header: 'ID', value: (h) => h.id },
    { header: 'ADDRESS', value: (h) => h.address || '-' },
    { header: 'LOAD/CAPACITY', value: (h) => `${h.load}/${h.capacity}`, align: 'right' },
    { header: 'HEALTH', value: (h) => h.health, color: (h) => healthColor(h.health) },
    { header: 'STARTED', value: (h) => ago(h.startedAt, now) },
  ];
  return renderTable(hosts, columns, opts);
}
