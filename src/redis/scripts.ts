import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { RedisClient } from './connection.js';

/**
 * Lua scripts live in lua/<name>-<numberOfKeys>.lua and are registered with
 * ioredis' defineCommand, which sends EVALSHA and falls back to EVAL.
 */
const LUA_DIR = new URL('./lua/', import.meta.url);

function load(file: string): { name: string; numberOfKeys: number; lua: string } {
  const m = /^(\w+)-(\d+)\.lua$/.exec(file);
  if (!m) throw new Error(`bad script file name ${file}`);
  // `--@include lib/<file>.lua` puts a shared function where it stands (Lua scripts sent to Redis cannot require one another).
  const lua = readFileSync(new URL(file, LUA_DIR), 'utf8').replace(/^--@include (lib\/\w+\.lua)$/gm, (_, lib: string) => readFileSync(new URL(lib, LUA_DIR), 'utf8'));
  return { name: m[1]!, numberOfKeys: Number(m[2]), lua };
}

const SCRIPTS = [
  'applyDnsChanges-4.lua',
  'heartbeat-4.lua',
  'admitHosts-2.lua',
  'allocateSandbox-2.lua',
  'finishCreate-3.lua',
  'beginDelete-3.lua',
  'releaseSandbox-3.lua',
  'markSandboxLost-2.lua',
  'markHostLost-2.lua',
  'forgetHost-2.lua',
  'transitionSandbox-2.lua',
  'extendSandbox-2.lua',
  'drainHost-3.lua',
  'undrainHost-3.lua',
  'reportContainer-2.lua',
  'storeCertificate-2.lua',
  'releaseLock-1.lua',
  'beginPause-3.lua',
  'settleSandbox-5.lua',
  'moveSandbox-1.lua',
  'claimDue-1.lua',
  'takeDue-1.lua',
  'noteSnapshot-4.lua',
  'putSnapshot-3.lua',
  'changeWorkspace-1.lua',
  'countSandboxes-1.lua',
].map(load);

/** A script's text as Redis runs it (its includes in place), by file name: what its EVALSHA hashes, for a bench reading MONITOR. */
export function scriptLua(file: string): string {
  return load(file).lua;
}

/** Negative results of Omega's scripts, turned into errors in one place by each caller. */
export enum ScriptFailure {
  NotFound = -1,
}

/** Negative results of allocateSandbox. */
export enum AllocateFailure {
  NoRoom = -1,
  IdInUse = -2,
}

/** Negative result of storeCertificate: the caller's certificate lock lapsed. */
export const STORE_NOT_LOCK_HOLDER = -1;

/** Negative result of releaseSandbox: the sandbox is not `deleting` (a delete must begin first). */
export const RELEASE_NOT_DELETING = -1;

export function defineScripts(client: RedisClient): void {
  for (const s of SCRIPTS) {
    if (!(s.name in client)) client.defineCommand(s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    applyDnsChanges(
      zone: string,
      names: string,
      serial: string,
      changes: string,
      changesJson: string,
      keepEntries: number,
      nowSeconds: number,
    ): Result<[number] | [ScriptFailure, number], Context>;
    heartbeat(alive: string, host: string, hosts: string, beats: string, ttlMs: number, hostId: string, address: string, managerUrl: string, capacity: number, startedAt: string): Result<number, Context>;
    admitHosts(hosts: string, load: string, prefix: string): Result<string[], Context>;
    allocateSandbox(
      load: string,
      sandboxes: string,
      prefix: string,
      id: string,
      nowMs: number,
      excluded: string,
      owner: string,
      preferred: string,
      warm: string,
      ...fields: string[]
    ): Result<[hostId: string, address: string, managerUrl: string] | AllocateFailure, Context>;
    finishCreate(sandbox: string, expiry: string, counts: string, id: string, owner: string, nowMs: number, expiresAtMs: number, hostPort: number, containerId: string, ingressPort: number | '', size: string): Result<string[] | 0, Context>;
    beginDelete(sandbox: string, expiry: string, counts: string, id: string, owner: string, nowMs: number): Result<string[] | 0, Context>;
    releaseSandbox(load: string, sandboxes: string, expiry: string, prefix: string, id: string, tombSeconds: number): Result<number, Context>;
    markSandboxLost(load: string, expiry: string, prefix: string, id: string, hostId: string, nowMs: number, why: string): Result<number, Context>;
    markHostLost(load: string, expiry: string, prefix: string, hostId: string, nowMs: number): Result<string[], Context>;
    forgetHost(hosts: string, load: string, prefix: string, hostId: string): Result<number, Context>;
    transitionSandbox(sandbox: string, counts: string, from: string, to: string, ...fields: string[]): Result<number, Context>;
    extendSandbox(sandbox: string, expiry: string, id: string, expiresAtMs: number): Result<number, Context>;
    drainHost(hostStatus: string, sandboxesOn: string, load: string, hostId: string): Result<number, Context>;
    undrainHost(hostStatus: string, sandboxesOn: string, load: string, hostId: string): Result<number, Context>;
    reportContainer(
      containers: string,
      hostEvents: string,
      sandboxId: string,
      entryJson: string,
      hostId: string,
      eventState: string,
      why: string,
      keepEvents: number,
    ): Result<number, Context>;
    storeCertificate(lock: string, certificate: string, token: string, bundleJson: string, fingerprint: string, nowMs: number): Result<number, Context>;
    releaseLock(lock: string, token: string): Result<number, Context>;
    beginPause(sandbox: string, expiry: string, counts: string, id: string, op: 'pause' | 'resume', owner: string, nowMs: number, kind: string, timeLeftMs: string): Result<string[] | string, Context>;
    settleSandbox(sandbox: string, expiry: string, frozen: string, stopped: string, counts: string, id: string, expected: string, owner: string, to: string, nowMs: number, ...fields: string[]): Result<string[] | 0, Context>;
    moveSandbox(load: string, prefix: string, id: string, op: 'archive' | 'begin' | 'back', owner: string, nowMs: number, preferred: string, excluded: string): Result<string[] | string | -1, Context>;
    noteSnapshot(snapshot: string, snapshots: string, sandbox: string, snapshotsWriting: string, id: string, createdAtMs: number, host: string, ...fields: string[]): Result<string | 0 | -1 | -2, Context>;
    putSnapshot(snapshot: string, snapshots: string, snapshotsWriting: string, id: string, createdAtMs: number, ...fields: string[]): Result<0 | 1, Context>;
    changeWorkspace(workspaces: string, prefix: string, name: string, op: 'attach' | 'place' | 'detach' | 'snapshot' | 'forget', arg: string, arg2: string, nowMs: number): Result<string[] | string, Context>;
    countSandboxes(counts: string, prefix: string, ...ids: string[]): Result<number, Context>;
    claimDue(due: string, id: string, nowMs: number, nextMs: number): Result<number, Context>;
    takeDue(due: string, nowMs: number, limit: number): Result<string[], Context>;
  }
}
