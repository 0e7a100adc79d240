import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '../../src/protocol/envd/gen/filesystem_pb.js';
import { Process } from '../../src/protocol/envd/gen/process_pb.js';

export interface EnvdClients {
  fs: Client<typeof Filesystem>;
  proc: Client<typeof Process>;
}

/**
 * Real Connect clients of the E2B agent (JSON over HTTP/1.1, as the SDK
 * speaks it), sending `token` as X-Access-Token and, when given, `user` as
 * HTTP Basic, as the SDK does.
 */
export function envdClients(baseUrl: string, token: string | null, opts: { user?: string; host?: string } = {}): EnvdClients {
  const headers: Interceptor = (next) => (req) => {
    if (token !== null) req.header.set('x-access-token', token);
    if (opts.user !== undefined) req.header.set('authorization', `Basic ${Buffer.from(`${opts.user}:`).toString('base64')}`);
    if (opts.host) req.header.set('host', opts.host);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false, interceptors: [headers] });
  return { fs: createClient(Filesystem, transport), proc: createClient(Process, transport) };
}

/** Collect a server stream's messages until it ends (or `until` says enough). */
export async function collect<T>(stream: AsyncIterable<T>, until: (m: T, all: T[]) => boolean = () => false): Promise<T[]> {
  const all: T[] = [];
  for await (const m of stream) {
    all.push(m);
    if (until(m, all)) break;
  }
  return all;
}
