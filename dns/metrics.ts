import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Packet } from 'dns2';
import { redisConnectionErrors } from '../src/redis/errors.js';
import type { DnsCounters } from './counters.js';


const RCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Packet.RCODE).map(([name, code]) => [code as number, name]),
);
RCODE_NAMES[16] = 'BADVERS';

export interface DnsMetricsSources {
  counters: DnsCounters;
  cacheSize(): number;
  zoneNames(): number;
  zoneSerial(): number;
  /** 1 when the zone is known to be current, 0 while it is a snapshot file's copy not yet caught up. */
  zoneCurrent(): number;
  /** How long the last load of the whole zone from Redis took. */
  zoneLoadSeconds(): number;
  redisErrors(): number;
}

/** Buckets of the feed's lag: propagation is meant to stay under 10 ms. */
const LAG_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5];

export function createDnsMetrics(src: DnsMetricsSources): { registry: Registry; apiChanges: Counter<'action'>; feedLag: Histogram } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registry.registerMetric(redisConnectionErrors);
  new Counter({
    name: 'omega_dns_queries_total',
    help: 'DNS queries answered, by query type and response code',
    labelNames: ['qtype', 'rcode'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, n] of src.counters.answered()) {
        this.inc({ qtype: Packet.typeName(key >> 6), rcode: RCODE_NAMES[key & 0x3f] ?? String(key & 0x3f) }, n);
      }
    },
  });
  const simple = (name: string, help: string, read: () => number, kind: 'counter' | 'gauge') => {
    if (kind === 'counter') {
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
    } else {
      new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
    }
  };
  simple('omega_dns_dropped_total', 'Packets dropped without an answer (unreadable, or a response)', () => src.counters.dropped, 'counter');
  simple('omega_dns_udp_send_errors_total', 'UDP answers the kernel would not send', () => src.counters.sendErrors, 'counter');
  simple('omega_dns_truncated_total', 'UDP answers sent truncated (TC) because they did not fit', () => src.counters.truncated, 'counter');
  simple('omega_dns_rate_limited_total', 'UDP answers withheld or slipped by response rate limiting', () => src.counters.rateLimited, 'counter');
  simple('omega_dns_redis_errors_total', 'Errors talking to Redis (API and change feed)', src.redisErrors, 'counter');
  simple('omega_dns_cache_entries', 'Encoded responses held in the answer cache', src.cacheSize, 'gauge');
  simple('omega_dns_zone_names', 'Names held in the in-memory zone', src.zoneNames, 'gauge');
  simple('omega_dns_zone_serial', 'The zone SOA serial currently served', src.zoneSerial, 'gauge');
  simple('omega_dns_zone_current', '1 when the zone is known to be current; 0 while answering from a snapshot file not yet caught up with Redis', src.zoneCurrent, 'gauge');
  simple('omega_dns_zone_load_seconds', 'How long the last load of the whole zone from Redis took', src.zoneLoadSeconds, 'gauge');
  const feedLag = new Histogram({
    name: 'omega_dns_feed_lag_seconds',
    help: "From a change's feed entry in Redis (its stream id's time) to the change being served here",
    buckets: LAG_BUCKETS,
    registers: [registry],
  });
  const apiChanges = new Counter({
    name: 'omega_dns_api_changes_total',
    help: 'Record changes applied through the HTTP API, by action',
    labelNames: ['action'] as const,
    registers: [registry],
  });
  return { registry, apiChanges, feedLag };
}
