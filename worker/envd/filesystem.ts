import { randomBytes } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  EventType,
  Filesystem,
  FilesystemEventSchema,
  WatchDirResponseSchema,
  type EntryInfo,
  type FilesystemEvent,
  type WatchDirResponse,
} from '../../src/protocol/envd/gen/filesystem_pb.js';
import type { ChangeKind } from '../../src/protocol/worker.js';
import type { Clients } from '../clients.js';
import { WorkerError } from '../errors.js';
import type { Files } from '../files.js';
import type { Home } from './home.js';
import { keepaliveMs, StreamClient } from './stream.js';

/** Levels ListDir descends at most, and entries it returns at most (as fs.list's bound). */
const MAX_DEPTH = 32;
const MAX_ENTRIES = 10_000;
/** Polling watchers (CreateWatcher) one worker keeps, and events each holds until read. */
const MAX_WATCHERS = 64;
const MAX_WATCHER_EVENTS = 10_000;

const EVENT_TYPES: Record<ChangeKind, EventType> = { created: EventType.CREATE, modified: EventType.WRITE, deleted: EventType.REMOVE };

export interface FilesystemDeps {
  files: Files;
  home: Home;
  clients: Clients;
  maxQueuedBytes: number;
}

/**
 * filesystem.Filesystem over the worker's Files and its one tree watcher:
 * each call resolves its path through the home, then does what the
 * WebSocket's fs.* method does, and answers with EntryInfo.
 */
export function filesystemService({ files, home, clients, maxQueuedBytes }: FilesystemDeps): ServiceImpl<typeof Filesystem> {
  const watchers = new Map<string, { client: StreamClient<FilesystemEvent>; events: FilesystemEvent[] }>();
  /** Each call its own author, so the watch streams (other clients) are told of its changes. */
  const author = () => `e${randomBytes(6).toString('hex')}`;

  /** A watch of `rel`: every change below it (recursive) or of its own entries, named relative to it. */
  const watchClient = async (path: string, recursive: boolean) => {
    const rel = home.rel(path);
    await files.directory(rel);
    const prefix = rel === '' ? '' : `${rel}/`;
    return new StreamClient<FilesystemEvent>((event, data) => {
      if (event !== 'fs.changed') return null;
      const change = data as { path: string; kind: ChangeKind };
      if (!change.path.startsWith(prefix)) return null;
      const name = change.path.slice(prefix.length);
      if (!recursive && name.includes('/')) return null;
      return { message: create(FilesystemEventSchema, { name, type: EVENT_TYPES[change.kind] }), bytes: name.length + 16 };
    }, maxQueuedBytes);
  };

  return {
    async stat(req, ctx) {
      return { entry: await home.entry(home.rel(req.path)) };
    },

    async makeDir(req, ctx) {
      const rel = home.rel(req.path);
      const { created } = await files.mkdir({ path: rel }, author());
      // The SDK's makeDir answers false on AlreadyExists.
      if (!created) throw new ConnectError(`${home.abs(rel)} already exists`, Code.AlreadyExists);
      return { entry: await home.entry(rel) };
    },

    async move(req, ctx) {
      const from = home.rel(req.source);
      const to = home.rel(req.destination);
      // rename(2)'s rules, as envd's: a file at the destination is replaced.
      await files.rename({ from, to, overwrite: true }, author());
      return { entry: await home.entry(to) };
    },

    async listDir(req, ctx) {
      const depth = Math.min(req.depth || 1, MAX_DEPTH);
      const rel = home.rel(req.path);
      const out: EntryInfo[] = [];
      const walk = async (dir: string, level: number): Promise<void> => {
        const { entries } = await files.list({ path: dir });
        for (const e of entries) {
          if (out.length >= MAX_ENTRIES) return;
          const child = dir === '' ? e.name : `${dir}/${e.name}`;
          try {
            out.push(await home.entry(child));
          } catch (err) {
            if (err instanceof WorkerError && err.code === 'NOT_FOUND') continue; // removed meanwhile
            throw err;
          }
          if (e.type === 'dir' && level < depth) await walk(child, level + 1);
        }
      };
      await walk(rel, 1);
      return { entries: out };
    },

    async remove(req, ctx) {
      await files.delete({ path: home.rel(req.path) }, author());
      return {};
    },

    async *watchDir(req, ctx): AsyncGenerator<WatchDirResponse> {
      const client = await watchClient(req.path, req.recursive);
      clients.add(client);
      yield create(WatchDirResponseSchema, { event: { case: 'start', value: {} } });
      for await (const ev of client.drain(ctx.signal, keepaliveMs(ctx.requestHeader))) {
        yield ev === null ? create(WatchDirResponseSchema, { event: { case: 'keepalive', value: {} } }) : create(WatchDirResponseSchema, { event: { case: 'filesystem', value: ev } });
      }
    },

    async createWatcher(req, ctx) {
      if (watchers.size >= MAX_WATCHERS) throw new ConnectError(`at most ${MAX_WATCHERS} watchers; remove one first`, Code.ResourceExhausted);
      const client = await watchClient(req.path, req.recursive);
      const events: FilesystemEvent[] = [];
      // A polling watcher keeps its events itself, up to a bound: the oldest go first.
      client.push = (message) => {
        events.push(message);
        if (events.length > MAX_WATCHER_EVENTS) events.shift();
      };
      clients.add(client);
      watchers.set(client.id, { client, events });
      return { watcherId: client.id };
    },

    async getWatcherEvents(req, ctx) {
      const w = watchers.get(req.watcherId);
      if (!w) throw new ConnectError(`no watcher ${req.watcherId}`, Code.NotFound);
      return { events: w.events.splice(0) };
    },

    async removeWatcher(req, ctx) {
      const w = watchers.get(req.watcherId);
      if (!w) throw new ConnectError(`no watcher ${req.watcherId}`, Code.NotFound);
      w.client.close();
      watchers.delete(req.watcherId);
      return {};
    },
  };
}

