import type { FastifyInstance } from 'fastify';
import type { Counter, Registry } from 'prom-client';
import { OmegaError } from '../src/errors.js';
import { bearerAuth, createHttpApp } from '../src/http.js';
import type { Logger } from '../src/log.js';
import {
  changesBodySchema,
  lookupBodySchema,
  type LookupBody,
  deleteRecordQuerySchema,
  fqdn,
  listRecordsQuerySchema,
  nameParamsSchema,
  normalizeName,
  normalizeValues,
  putRecordBodySchema,
  type Change,
  type ChangesBody,
  type NameRecords,
  type PutRecordBody,
  type RecordType,
} from '../src/protocol/dns.js';
import type { RecordStore } from './store.js';
import type { Zone } from './zone.js';

export interface DnsApiOptions {
  zone: Zone;
  store: RecordStore;
  token: string | undefined;
  defaultTtl: number;
  /** Relative names the server owns (in-zone name servers): not writable. */
  reserved: Set<string>;
  registry: Registry;
  apiChanges: Counter<'action'>;
  redisReady(): boolean;
  /** OMEGA_MAX_CONNECTIONS_PER_SOURCE. */
  maxConnectionsPerSource?: number;
  log: Logger;
}

function present(name: string, zone: string, recs: NameRecords) {
  return {
    name: fqdn(name, zone),
    records: (Object.keys(recs) as RecordType[]).sort().map((type) => ({ type, ttl: recs[type]!.ttl, values: recs[type]!.values })),
  };
}

/**
 * The record-update API. Every /v1 route needs the bearer token: writes
 * obviously, and reads too, because a listing would hand out the unguessable
 * sandbox names that are the first line of a sandbox's privacy.
 */
export function buildDnsApi(o: DnsApiOptions): FastifyInstance {
  const app = createHttpApp(o.log, { maxConnectionsPerSource: o.maxConnectionsPerSource });
  const origin = o.zone.origin;
  const name = (raw: string): string => {
    const rel = normalizeName(raw, origin);
    if (o.reserved.has(rel)) throw new OmegaError('RESERVED_NAME', `${fqdn(rel, origin)} is a name server or the API name of the zone; its addresses come from configuration`);
    return rel;
  };
  const auth = bearerAuth(o.token);

  app.get('/healthz', async (_req, reply) => {
    const redis = o.redisReady() && (await o.store.ping()) ? 'up' : 'down';
    // Healthy while the zone is loaded: with Redis down the server still answers what it knows.
    const ok = o.zone.loaded;
    return reply.status(ok ? 200 : 503).send({
      status: ok ? (redis === 'up' ? 'ok' : 'degraded') : 'unavailable',
      redis,
      // current: false while answering from a snapshot file not yet caught up with Redis.
      zone: { name: origin, loaded: o.zone.loaded, current: o.zone.current, names: o.zone.size, serial: o.zone.serial },
    });
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', o.registry.contentType);
    return o.registry.metrics();
  });

  app.register(async (v1) => {
    v1.addHook('onRequest', auth);

    v1.put<{ Params: { name: string }; Body: PutRecordBody }>(
      '/v1/records/:name',
      { schema: { params: nameParamsSchema, body: putRecordBodySchema } },
      async (req) => {
        const rel = name(req.params.name);
        const { type } = req.body;
        const values = normalizeValues(type, req.body.values);
        const ttl = req.body.ttl ?? o.defaultTtl;
        const serial = await o.store.apply([{ action: 'UPSERT', name: rel, type, ttl, values }]);
        o.apiChanges.inc({ action: 'UPSERT' });
        return { name: fqdn(rel, origin), type, ttl, values, serial };
      },
    );

    v1.get<{ Params: { name: string } }>('/v1/records/:name', { schema: { params: nameParamsSchema } }, async (req) => {
      const rel = name(req.params.name);
      const recs = await o.store.get(rel);
      if (!recs) throw new OmegaError('RECORD_NOT_FOUND', `no records at ${fqdn(rel, origin)}`);
      return present(rel, origin, recs);
    });

    v1.delete<{ Params: { name: string }; Querystring: { type?: RecordType } }>(
      '/v1/records/:name',
      { schema: { params: nameParamsSchema, querystring: deleteRecordQuerySchema } },
      async (req) => {
        const rel = name(req.params.name);
        const type = req.query.type;
        const serial = await o.store.apply([{ action: 'DELETE', name: rel, ...(type ? { type } : {}) }]);
        o.apiChanges.inc({ action: 'DELETE' });
        return { name: fqdn(rel, origin), type: type ?? null, deleted: true, serial };
      },
    );

    v1.get<{ Querystring: { prefix?: string; cursor?: string; limit: number } }>(
      '/v1/records',
      { schema: { querystring: listRecordsQuerySchema } },
      async (req) => {
        const prefix = (req.query.prefix ?? '').toLowerCase();
        const page = await o.store.list(prefix, req.query.cursor, req.query.limit);
        return { records: page.items.map(([n, recs]) => present(n, origin, recs)), nextCursor: page.next };
      },
    );

    v1.post<{ Body: LookupBody }>('/v1/lookup', { schema: { body: lookupBodySchema } }, async (req) => {
      const rel = req.body.names.map((n, i) => {
        try {
          return name(n);
        } catch (err) {
          if (err instanceof OmegaError) throw new OmegaError(err.code, `names[${i}]: ${err.message}`, { details: { index: i } });
          throw err;
        }
      });
      const has = await o.store.present(rel);
      // Answered as given: the caller matches them against its own.
      return { present: req.body.names.filter((_, i) => has[i]) };
    });

    v1.post<{ Body: ChangesBody }>('/v1/changes', { schema: { body: changesBodySchema } }, async (req) => {
      const changes: Change[] = req.body.changes.map((c, i) => {
        try {
          const rel = name(c.name);
          if (c.action === 'DELETE') return { action: 'DELETE', name: rel, ...(c.type ? { type: c.type } : {}), ...(c.ifExists ? { ifExists: true } : {}) };
          const type = c.type!;
          return { action: 'UPSERT', name: rel, type, ttl: c.ttl ?? o.defaultTtl, values: normalizeValues(type, c.values!) };
        } catch (err) {
          if (err instanceof OmegaError) throw new OmegaError(err.code, `changes[${i}]: ${err.message}`, { details: { index: i } });
          throw err;
        }
      });
      let serial: number;
      try {
        serial = await o.store.apply(changes);
      } catch (err) {
        if (err instanceof OmegaError && err.code === 'RECORD_NOT_FOUND') {
          const i = err.details?.index as number;
          throw new OmegaError('RECORD_NOT_FOUND', `changes[${i}]: ${err.message}; no change was applied`, { details: { index: i } });
        }
        throw err;
      }
      for (const c of changes) o.apiChanges.inc({ action: c.action });
      return { serial, applied: changes.length };
    });
  });

  return app;
}
