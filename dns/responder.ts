import { splitPortLabel, type NameRecords, type RecordType } from '../src/protocol/dns.js';
import type { DnsCounters } from './counters.js';
import {
  asciiLower,
  CLASS_ANY,
  CLASS_IN,
  CLASSIC_UDP_SIZE,
  encodeResponse,
  FLAG_CD,
  FLAG_RD,
  HEADER_SIZE,
  parseQuery,
  patchCached,
  questionLabels,
  RCODE,
  TYPE,
  truncate,
  type EdnsReply,
  type Query,
  type ResourceRecord,
  type ResponseSpec,
} from './wire.js';
import type { Zone, ZoneChange } from './zone.js';
import { AnswerCache, wireKeyOf } from './cache.js';

export interface NameServer {
  /** Absolute, lower case. */
  name: string;
  /** Glue addresses, served when the name is inside the zone. */
  addresses: string[];
}

export interface ResponderOptions {
  zone: Zone;
  nameservers: NameServer[];
  /** Names answered from configuration rather than the zone (the master's public name); none of them is an NS. */
  fixed?: NameServer[];
  /** RNAME of the SOA as a name (hostmaster.sandbox.test). */
  soaRname: string;
  /** TTL of records written without one, and of the SOA record. */
  defaultTtl: number;
  /** SOA MINIMUM: how long resolvers cache "no such name" (RFC 2308 §5). */
  negativeTtl: number;
  /** The UDP payload size we advertise and send at most (RFC 6891 §6.2.5). */
  maxUdpPayload: number;
  /** Encoded responses kept for re-use; the cache is emptied on every zone change. */
  cacheEntries: number;
  counters: DnsCounters;
}

const NS_TTL = 3600;
/** Fixed names are configuration; a short TTL lets a moved master be found soon after a restart with new settings. */
const FIXED_TTL = 300;

/** A response and the cache it belongs in. */
type Answer = ResponseSpec & { kind: 'exact' | 'synth' | 'derived' | 'negative' | 'uncacheable' };
const TYPE_NAMES: Record<number, RecordType> = { [TYPE.A]: 'A', [TYPE.AAAA]: 'AAAA', [TYPE.TXT]: 'TXT' };

/**
 * Turns one query message into one response message (or nothing). The same
 * path serves UDP and TCP; only the size limit differs.
 *
 * Hot path: parse, look the (name, type, EDNS state) up in a cache of encoded
 * responses, patch id/flags/question. Everything else (zone lookup, RFC rules,
 * encoding) runs once per distinct question per zone serial.
 */
export class Responder {
  /**
   * Three caches, by what can make an answer stale:
   *  - exact: answers from a name's own records (and REFUSED): stale only when that name changes;
   *  - synth: wildcard-synthesised answers: stale when any name appears or vanishes or a wildcard changes;
   *  - derived: answers by the preview rule (`3000-abc` from `abc`): stale when another name changes, so on every change;
   *  - negative: NXDOMAIN, NODATA and apex answers: they carry the SOA serial, stale on every change.
   */
  private readonly exact: AnswerCache;
  private readonly synth: AnswerCache;
  private readonly derived: AnswerCache;
  private readonly negative: AnswerCache;
  private readonly origin: string;
  private readonly originLabels: string[];
  private readonly glue = new Map<string, NameRecords>();
  /** The parsed query, re-used: handle() runs to completion before the next packet. */
  private readonly scratch: Query = {
    id: 0,
    echoFlags: 0,
    nameEnd: 0,
    qtype: 0,
    qclass: 0,
    wireKey: '',
    edns: false,
    ednsVersion: 0,
    udpSize: 0,
    dnssecOk: false,
  };

  constructor(private readonly opts: ResponderOptions) {
    this.origin = opts.zone.origin;
    this.originLabels = this.origin.split('.');
    for (const ns of opts.nameservers) {
      if (ns.name !== this.origin && !ns.name.endsWith(`.${this.origin}`)) continue;
      const recs: NameRecords = {};
      const v4 = ns.addresses.filter((a) => !a.includes(':'));
      const v6 = ns.addresses.filter((a) => a.includes(':'));
      if (v4.length) recs.A = { ttl: NS_TTL, values: v4 };
      if (v6.length) recs.AAAA = { ttl: NS_TTL, values: v6 };
      this.glue.set(ns.name, recs);
    }
    for (const f of opts.fixed ?? []) {
      if (!f.addresses.length || (f.name !== this.origin && !f.name.endsWith(`.${this.origin}`))) continue;
      const v4 = f.addresses.filter((a) => !a.includes(':'));
      const v6 = f.addresses.filter((a) => a.includes(':'));
      this.glue.set(f.name, { ...(v4.length ? { A: { ttl: FIXED_TTL, values: v4 } } : {}), ...(v6.length ? { AAAA: { ttl: FIXED_TTL, values: v6 } } : {}) });
    }
    this.exact = new AnswerCache(opts.cacheEntries);
    this.synth = new AnswerCache(opts.cacheEntries);
    this.derived = new AnswerCache(opts.cacheEntries);
    this.negative = new AnswerCache(opts.cacheEntries);
    opts.zone.on('change', (c: ZoneChange) => {
      this.negative.clear();
      this.derived.clear();
      if (c.all) this.exact.clear();
      else for (const name of c.names) this.exact.deleteName(wireKeyOf(name));
      if (c.shapeChanged) this.synth.clear();
    });
  }

  get cacheSize(): number {
    return this.exact.size + this.synth.size + this.derived.size + this.negative.size;
  }

  /** `maxSize` is the transport's limit: 65535 over TCP, undefined for UDP (computed from the query). */
  handle(buf: Buffer, tcp: boolean): Buffer | null {
    const counters = this.opts.counters;
    const q = parseQuery(buf, this.scratch);
    if ('drop' in q) {
      if (q.drop) {
        counters.dropped++;
        return null;
      }
      counters.count(0, q.rcode);
      const flags = buf.readUInt16BE(2);
      return encodeResponse(
        buf,
        { id: buf.readUInt16BE(0), echoFlags: flags & (FLAG_RD | FLAG_CD), questionEnd: q.questionEnd, opcode: q.opcode },
        { rcode: q.rcode, aa: false, answers: [], authority: [], additional: [] },
        null,
      );
    }
    const edns: EdnsReply | null = q.edns ? { udpSize: this.opts.maxUdpPayload, dnssecOk: q.dnssecOk } : null;
    let out: Buffer;
    if (q.edns && q.ednsVersion !== 0) {
      // RFC 6891 §6.1.3: we speak version 0 only.
      out = this.encode(buf, q, { rcode: RCODE.BADVERS, aa: false, answers: [], authority: [], additional: [] }, edns);
    } else if ((q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) || q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) {
      out = this.encode(buf, q, { rcode: RCODE.REFUSED, aa: false, answers: [], authority: [], additional: [] }, edns);
    } else {
      const slot = (q.qtype << 2) | (q.edns ? (q.dnssecOk ? 2 : 1) : 0);
      const cached = this.exact.get(slot, q.wireKey) ?? this.synth.get(slot, q.wireKey) ?? this.derived.get(slot, q.wireKey) ?? this.negative.get(slot, q.wireKey);
      if (cached) {
        out = patchCached(cached, buf, q);
      } else {
        const spec = this.lookup(buf, q);
        out = this.encode(buf, q, spec, edns);
        if (spec.kind !== 'uncacheable') this[spec.kind].set(slot, q.wireKey, out);
      }
    }
    counters.count(q.qtype, (out[3]! & 0xf) | (q.edns && q.ednsVersion !== 0 ? RCODE.BADVERS : 0));
    const limit = tcp ? 65535 : q.edns ? Math.min(q.udpSize, this.opts.maxUdpPayload) : CLASSIC_UDP_SIZE;
    if (out.length > limit) {
      counters.truncated++;
      return truncate(out, q.nameEnd + 4, edns);
    }
    return out;
  }

  private encode(buf: Buffer, q: Query, spec: ResponseSpec, edns: EdnsReply | null): Buffer {
    return encodeResponse(buf, { id: q.id, echoFlags: q.echoFlags, questionEnd: q.nameEnd + 4 }, spec, edns);
  }

  private lookup(buf: Buffer, q: Query): Answer {
    const labels = questionLabels(buf, q.nameEnd).map((l) =>
      // A '.' inside a label can match no stored name; escape it (RFC 1035
      // §5.1 \DDD) so it cannot split into two labels either.
      asciiLower(l.label).replace(/\./g, '\\046'),
    );
    const ol = this.originLabels;
    const inZone =
      labels.length >= ol.length && ol.every((label, i) => labels[labels.length - ol.length + i] === label);
    if (!inZone) {
      // Not ours: no recursion, no referral (RFC 1035 §4.3.1; not an open resolver).
      return { kind: 'exact', rcode: RCODE.REFUSED, aa: false, answers: [], authority: [], additional: [] };
    }
    const zone = this.opts.zone;
    if (!zone.loaded) return { kind: 'uncacheable', rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [], additional: [] };
    const name = labels.join('.');
    const qtype = q.qtype;

    if (name === this.origin) {
      const answers: ResourceRecord[] = [];
      const additional: ResourceRecord[] = [];
      if (qtype === TYPE.SOA || qtype === TYPE.ANY) answers.push(this.soa(null, this.opts.defaultTtl));
      if (qtype === TYPE.NS || qtype === TYPE.ANY) {
        for (const ns of this.opts.nameservers) answers.push({ owner: null, ttl: NS_TTL, data: { type: TYPE.NS, target: ns.name } });
        // Glue for in-zone name servers (RFC 1034 §4.2.1).
        for (const ns of this.opts.nameservers) additional.push(...this.records(ns.name, this.glue.get(ns.name), TYPE.ANY));
      }
      // Apex answers carry the serial: cached with the negative ones.
      return answers.length ? { kind: 'negative', rcode: RCODE.NOERROR, aa: true, answers, authority: [], additional } : this.noData();
    }

    const glue = this.glue.get(name);
    let found: { node: NameRecords | null; wildcard: boolean; derived?: boolean } | null = glue ? { node: glue, wildcard: false } : zone.resolve(name);
    if (!found || found.wildcard) {
      // The preview rule (splitPortLabel) comes before a wildcard: `3000-abc` answers
      // what abc at the same level does when it has no records of its own, whatever `*` says.
      const base = splitPortLabel(labels[0]!)?.base ?? null;
      const node = base === null ? undefined : zone.get(`${base}.${labels.slice(1).join('.')}`);
      if (node) found = { node, wildcard: false, derived: true };
    }
    if (!found) return this.negativeAnswer(RCODE.NXDOMAIN);
    // Wildcard and preview answers take the query's name as owner (RFC 4592
    // §3.3.1); so do exact ones: all are written as a pointer to the question.
    const answers = this.records(null, found.node ?? undefined, qtype);
    // A preview name has the base name's addresses only: a TXT such as an ACME challenge is the base's own.
    if (found.derived) {
      const addresses = answers.filter((a) => a.data.type === TYPE.A || a.data.type === TYPE.AAAA);
      if (!addresses.length) return this.noData();
      return { kind: 'derived', rcode: RCODE.NOERROR, aa: true, answers: addresses, authority: [], additional: [] };
    }
    if (!answers.length) return this.noData();
    return { kind: found.wildcard ? 'synth' : 'exact', rcode: RCODE.NOERROR, aa: true, answers, authority: [], additional: [] };
  }

  private records(owner: string | null, node: NameRecords | undefined, qtype: number): ResourceRecord[] {
    if (!node) return [];
    const types = qtype === TYPE.ANY ? (Object.keys(node) as RecordType[]) : TYPE_NAMES[qtype] ? [TYPE_NAMES[qtype]!] : [];
    const out: ResourceRecord[] = [];
    for (const t of types) {
      const set = node[t];
      if (!set) continue;
      for (const v of set.values) {
        if (t === 'TXT') out.push({ owner, ttl: set.ttl, data: { type: TYPE.TXT, text: v } });
        else out.push({ owner, ttl: set.ttl, data: { type: t === 'A' ? TYPE.A : TYPE.AAAA, address: v } });
      }
    }
    return out;
  }

  /** RFC 2308 §2.2: NODATA is NOERROR with no answer and the SOA in authority. */
  private noData(): Answer {
    return this.negativeAnswer(RCODE.NOERROR);
  }

  /** RFC 2308 §3: the SOA's TTL in a negative answer is min(SOA TTL, SOA MINIMUM). */
  private negativeAnswer(rcode: number): Answer {
    // A copy from a file not yet caught up may lack a name created since: no
    // denial from it (a resolver would cache it, RFC 2308 §5), SERVFAIL sends it to another server.
    if (!this.opts.zone.current) return { kind: 'uncacheable', rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [], additional: [] };
    const ttl = Math.min(this.opts.defaultTtl, this.opts.negativeTtl);
    return { kind: 'negative', rcode, aa: true, answers: [], authority: [this.soa(this.origin, ttl)], additional: [] };
  }

  private soa(owner: string | null, ttl: number): ResourceRecord {
    return {
      owner,
      ttl,
      data: {
        type: TYPE.SOA,
        mname: this.opts.nameservers[0]?.name ?? `ns1.${this.origin}`,
        rname: this.opts.soaRname,
        serial: this.opts.zone.serial >>> 0,
        refresh: 3600,
        retry: 600,
        expire: 604800,
        minimum: this.opts.negativeTtl,
      },
    };
  }
}

export { HEADER_SIZE };
