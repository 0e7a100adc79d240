import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { WorkerError } from '../errors.js';
import type { Files } from '../files.js';
import type { WorkerLogger } from '../log.js';
import { httpError } from './errors.js';
import { checkUser, type Home } from './home.js';
import { sendEnvdError } from './routes.js';

export { sendEnvdError };

/** envd's error body: the HTTP status again as `code`, and a message (the SDK shows the message). */

/**
 * `GET /files?path=` (the file's bytes) and `POST /files` (multipart with
 * several files, or one file's bytes as octet-stream, gzipped or not), over
 * the worker's Files: the same path rules, ownership and size limit as fs.read
 * and fs.write. The token was checked before the body is read.
 */
export class FilesHttp {
  constructor(
    private readonly files: Files,
    private readonly home: Home,
    /** Largest multipart body read (it is parsed whole); each file is also held to the file limit. */
    private readonly maxUploadBytes: number,
    private readonly log: WorkerLogger,
  ) {}

  async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      checkUser(req.headers.authorization, url.searchParams.get('username'));
      if (req.method === 'GET' || req.method === 'HEAD') return await this.download(req, res, url);
      if (req.method === 'POST') return await this.upload(req, res, url);
      sendEnvdError(res, 405, `${req.method} is not served on /files`, { allow: 'GET, HEAD, POST' });
    } catch (err) {
      const { status, message } = httpError(err, this.log, `${req.method} /files`);
      // A refused upload is not read further: the connection closes after the answer.
      if (req.method === 'POST' && !req.complete) res.setHeader('connection', 'close');
      sendEnvdError(res, status, message);
    }
  }

  private async download(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const p = url.searchParams.get('path');
    if (p === null) throw new WorkerError('INVALID_PARAMS', 'the query parameter path is required');
    const { file, size } = await this.files.openForRead(this.home.rel(p));
    // Compressed only when gzip is all the client offers (the SDK's gzip option): fetch's default list gets the bytes as they are.
    const gzip = /^\s*gzip\s*(;.*)?$/i.test(String(req.headers['accept-encoding'] ?? ''));
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(path.posix.basename(p))}`,
      'cache-control': 'no-store',
    };
    if (gzip) headers['content-encoding'] = 'gzip';
    else headers['content-length'] = size;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    const source = createReadStream(file);
    await (gzip ? pipeline(source, createGzip(), res) : pipeline(source, res)).catch((err: unknown) => {
      this.log.debug({ err }, 'a download ended early');
      res.destroy();
    });
  }

  private async upload(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    const queryPath = url.searchParams.get('path');
    const author = `e${randomBytes(6).toString('hex')}`;
    const written: Array<{ name: string; type: 'file'; path: string }> = [];
    const write = async (p: string, data: Buffer) => {
      const rel = this.home.rel(p);
      await this.files.writeBytes(rel, data, author);
      written.push({ name: path.posix.basename(this.home.abs(rel)), type: 'file', path: this.home.abs(rel) });
    };
    if (type.startsWith('multipart/form-data')) {
      const body = await readAll(req, this.maxUploadBytes, 'the upload', req);
      let form: FormData;
      try {
        form = await new Response(body, { headers: { 'content-type': type } }).formData();
      } catch (err) {
        throw new WorkerError('BAD_REQUEST', 'the body is not valid multipart/form-data', { cause: err });
      }
      const parts = [...form.values()].filter((v): v is File => typeof v !== 'string');
      if (parts.length === 0) throw new WorkerError('BAD_REQUEST', 'no file in the form');
      if (queryPath !== null && parts.length > 1) throw new WorkerError('BAD_REQUEST', 'with ?path= the form may hold one file; name several by their file names');
      for (const part of parts) {
        const p = queryPath ?? part.name;
        if (!p) throw new WorkerError('BAD_REQUEST', 'a file without a path: name it in ?path= or by its file name');
        await write(p, Buffer.from(await part.arrayBuffer()));
      }
    } else {
      if (queryPath === null) throw new WorkerError('BAD_REQUEST', 'the query parameter path is required for a body that is not multipart');
      const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') throw new WorkerError('BAD_REQUEST', `content-encoding ${encoding} is not accepted: gzip or none`);
      // The limit counts the bytes written, so a small gzip cannot expand into a large file.
      const source: Readable = encoding === 'gzip' ? req.pipe(createGunzip()) : req;
      await write(queryPath, await readAll(source, this.files.fileLimit, 'the file', req));
    }
    const body = JSON.stringify(written);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }
}

/**
 * A body read whole, refused (FILE_TOO_LARGE) past `limit` bytes: at once
 * when its Content-Length says so. Events, not for-await: leaving a for-await
 * early destroys the request's socket, and the client would get a reset
 * instead of the answer.
 */
function readAll(source: Readable, limit: number, what: string, req: IncomingMessage): Promise<Buffer> {
  const tooLarge = () => new WorkerError('FILE_TOO_LARGE', `${what} is larger than ${limit} bytes, the most this sandbox accepts at once`);
  if (source === req && Number(req.headers['content-length']) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: WorkerError) => {
      source.off('data', onData);
      source.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return fail(tooLarge());
      chunks.push(chunk);
    };
    source.on('data', onData);
    source.once('end', () => resolve(Buffer.concat(chunks)));
    source.once('error', (err) => fail(new WorkerError('BAD_REQUEST', `${what} could not be read: ${err.message}`, { cause: err })));
    // A client that goes away mid-body: the request closes without its end.
    req.once('close', () => {
      if (req.complete) return;
      if (source !== req) source.destroy(new Error('the client went away'));
      else fail(new WorkerError('BAD_REQUEST', `${what} was cut short: the client went away`));
    });
  });
}
