/**
 * DNS wire format: the strict query parser of the hot path and the response
 * encoder of the cold path (RFC 1035 §4, RFC 6891 for EDNS).
 *
 * Why not dns2's codec here: its Name codec works on dotted strings, so a
 * question label holding a '.' or binary octets cannot be echoed faithfully,
 * and responses must carry the client's question octets untouched (0x20 case
 * randomisation) so a cached answer can be re-used by patching id, flags and
 * question in place. dns2 still supplies the constants, and tests decode every
 * message this module writes with dns2's parser.
 */

export const TYPE = { A: 1, NS: 2, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const HEADER_SIZE = 12;
/** RFC 1035 §4.2.1: the limit of a UDP message without EDNS. */
export const CLASSIC_UDP_SIZE = 512;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_CD = 0x0010;

export interface Query {
  id: number;
  /** The query's RD and CD bits, which a response copies (RFC 1035 §4.1.1, RFC 4035 §3.2.2). */
  echoFlags: number;
  /** End of the QNAME octets; the question section ends 4 octets later. */
  nameEnd: number;
  qtype: number;
  qclass: number;
  /** Lower-cased wire octets of QNAME as a latin1 string: the cache key's name part. */
  wireKey: string;
  edns: boolean;
  ednsVersion: number;
  /** The requestor's UDP payload size, at least 512 (RFC 6891 §6.2.5). */
  udpSize: number;
  dnssecOk: boolean;
}

/** What the parser could not accept: drop silently, or answer with this rcode. */
export type ParseFailure = { drop: true } | { drop: false; rcode: number; opcode: number; questionEnd: number };

const DROP: ParseFailure = { drop: true };

/**
 * Parse one query message. Anything that is not a well-formed single-question
 * QUERY gets a failure: unreadable or a response (QR=1, so two servers can
 * never loop) is dropped; a readable header with a bad body is FORMERR; other
 * opcodes NOTIMP (RFC 1035 §4.1.1).
 */
export function parseQuery(buf: Buffer, into?: Query): Query | ParseFailure {
  // Byte arithmetic rather than readUInt16BE: this runs for every packet.
  const len = buf.length;
  if (len < HEADER_SIZE) return DROP;
  const flags = (buf[2]! << 8) | buf[3]!;
  if (flags & FLAG_QR) return DROP;
  const opcode = (flags >> 11) & 0xf;
  const qdcount = (buf[4]! << 8) | buf[5]!;
  if (qdcount !== 1) return { drop: false, rcode: opcode === 0 ? RCODE.FORMERR : RCODE.NOTIMP, opcode, questionEnd: 0 };
  // QNAME: uncompressed labels, at most 255 octets (RFC 1035 §3.1, §4.1.4;
  // a pointer in the first question could only point backwards into the header).
  let off = HEADER_SIZE;
  let hasUpper = false;
  let hasHigh = false;
  for (;;) {
    if (off >= len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd: 0 };
    const l = buf[off]!;
    if (l === 0) break;
    if (l > 63) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd: 0 };
    const end = off + 1 + l;
    if (end > len || end - HEADER_SIZE > 254) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd: 0 };
    for (let i = off + 1; i < end; i++) {
      const c = buf[i]!;
      if (c >= 65 && c <= 90) hasUpper = true;
      else if (c >= 0x80) hasHigh = true;
    }
    off = end;
  }
  const nameEnd = off + 1;
  if (nameEnd + 4 > len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd: 0 };
  const questionEnd = nameEnd + 4;
  if (opcode !== 0) return { drop: false, rcode: RCODE.NOTIMP, opcode, questionEnd };
  const qtype = (buf[nameEnd]! << 8) | buf[nameEnd + 1]!;
  const qclass = (buf[nameEnd + 2]! << 8) | buf[nameEnd + 3]!;
  // A query carries no answer or authority records.
  if ((buf[6]! | buf[7]! | buf[8]! | buf[9]!) !== 0) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
  if (qtype === TYPE.OPT) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };

  let edns = false;
  let ednsVersion = 0;
  let udpSize = CLASSIC_UDP_SIZE;
  let dnssecOk = false;
  let arcount = (buf[10]! << 8) | buf[11]!;
  off = questionEnd;
  while (arcount-- > 0) {
    // Owner name: labels or a pointer, walked only to find its end.
    const ownerStart = off;
    for (;;) {
      if (off >= len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
      const l = buf[off]!;
      if (l === 0) {
        off += 1;
        break;
      }
      if ((l & 0xc0) === 0xc0) {
        off += 2;
        break;
      }
      if (l > 63) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
      off += 1 + l;
    }
    if (off + 10 > len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    if (off + 10 + rdlen > len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, owned by the root.
      if (edns || off !== ownerStart + 1 || buf[ownerStart] !== 0) {
        return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };
      }
      edns = true;
      udpSize = Math.max(CLASSIC_UDP_SIZE, buf.readUInt16BE(off + 2));
      ednsVersion = buf[off + 5]!;
      dnssecOk = (buf[off + 6]! & 0x80) !== 0;
    }
    off += 10 + rdlen;
  }
  if (off !== len) return { drop: false, rcode: RCODE.FORMERR, opcode, questionEnd };

  let wireKey = buf.toString('latin1', HEADER_SIZE, nameEnd);
  if (hasUpper) wireKey = hasHigh ? asciiLower(wireKey) : wireKey.toLowerCase();
  // The responder passes one object it re-uses for every query: no
  // allocation per packet on the hot path.
  const q = into ?? ({} as Query);
  q.id = (buf[0]! << 8) | buf[1]!;
  q.echoFlags = flags & (FLAG_RD | FLAG_CD);
  q.nameEnd = nameEnd;
  q.qtype = qtype;
  q.qclass = qclass;
  q.wireKey = wireKey;
  q.edns = edns;
  q.ednsVersion = ednsVersion;
  q.udpSize = udpSize;
  q.dnssecOk = dnssecOk;
  return q;
}

/** RFC 4343: DNS compares names ignoring the case of ASCII letters only. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** The labels of QNAME as they appear on the wire, with their offsets. */
export function questionLabels(buf: Buffer, nameEnd: number): Array<{ label: string; offset: number }> {
  const out: Array<{ label: string; offset: number }> = [];
  let off = HEADER_SIZE;
  while (off < nameEnd - 1) {
    const l = buf[off]!;
    out.push({ label: buf.toString('latin1', off + 1, off + 1 + l), offset: off });
    off += 1 + l;
  }
  return out;
}

// ---- response encoding ---------------------------------------------------

export type RData =
  | { type: typeof TYPE.A; address: string }
  | { type: typeof TYPE.AAAA; address: string }
  | { type: typeof TYPE.TXT; text: string }
  | { type: typeof TYPE.NS; target: string }
  | {
      type: typeof TYPE.SOA;
      mname: string;
      rname: string;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    };

export interface ResourceRecord {
  /** `null` means "the question's name", written as a pointer to it. */
  owner: string | null;
  ttl: number;
  data: RData;
}

export interface ResponseSpec {
  rcode: number;
  aa: boolean;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

export interface EdnsReply {
  /** Our own advertised UDP payload size. */
  udpSize: number;
  dnssecOk: boolean;
}

class MessageWriter {
  buf: Buffer;
  off = 0;
  private readonly names = new Map<string, number>();
  constructor(size: number) {
    this.buf = Buffer.alloc(size);
  }
  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }
  bytes(b: Buffer | Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }
  /** Make the suffixes of an already written name available to compression. */
  remember(suffix: string, offset: number): void {
    if (offset < 0x3fff && !this.names.has(suffix)) this.names.set(suffix, offset);
  }
  /** Write a lower-case dotted name with RFC 1035 §4.1.4 compression. */
  name(dotted: string): void {
    const labels = dotted === '' ? [] : dotted.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      const ptr = this.names.get(suffix);
      if (ptr !== undefined) {
        this.u16(0xc000 | ptr);
        return;
      }
      this.remember(suffix, this.off);
      const label = Buffer.from(labels[i]!, 'latin1');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }
}

function writeRecord(w: MessageWriter, rr: ResourceRecord): void {
  if (rr.owner === null) w.u16(0xc000 | HEADER_SIZE);
  else w.name(rr.owner);
  const d = rr.data;
  w.u16(d.type);
  w.u16(CLASS_IN);
  w.u32(rr.ttl);
  const lenAt = w.off;
  w.u16(0);
  switch (d.type) {
    case TYPE.A:
      for (const part of d.address.split('.')) w.u8(Number(part));
      break;
    case TYPE.AAAA:
      w.bytes(ipv6Bytes(d.address));
      break;
    case TYPE.TXT: {
      // RFC 1035 §3.3.14: one or more <character-string>s of up to 255 octets.
      const text = Buffer.from(d.text, 'utf8');
      if (text.length === 0) w.u8(0);
      for (let i = 0; i < text.length; i += 255) {
        const chunk = text.subarray(i, i + 255);
        w.u8(chunk.length);
        w.bytes(chunk);
      }
      break;
    }
    case TYPE.NS:
      w.name(d.target);
      break;
    case TYPE.SOA:
      w.name(d.mname);
      w.name(d.rname);
      w.u32(d.serial);
      w.u32(d.refresh);
      w.u32(d.retry);
      w.u32(d.expire);
      w.u32(d.minimum);
      break;
  }
  w.buf.writeUInt16BE(w.off - lenAt - 2, lenAt);
}

/** RFC 6891 §6.1.2-3: the OPT pseudo-record; the high 8 bits of an extended rcode live in its TTL. */
function writeOpt(w: MessageWriter, edns: EdnsReply, extendedRcode: number): void {
  w.u8(0);
  w.u16(TYPE.OPT);
  w.u16(edns.udpSize);
  w.u8(extendedRcode);
  w.u8(0); // version 0
  w.u16(edns.dnssecOk ? 0x8000 : 0);
  w.u16(0);
}

/**
 * Encode a response to the query in `query` (whose question octets are copied
 * verbatim). The id and echoed flags are those of this query; cached copies
 * are patched by `patchCached`.
 */
export function encodeResponse(
  queryBuf: Buffer,
  q: { id: number; echoFlags: number; questionEnd: number; opcode?: number },
  spec: ResponseSpec,
  edns: EdnsReply | null,
): Buffer {
  const w = new MessageWriter(512);
  const rcodeLow = spec.rcode & 0xf;
  const flags = FLAG_QR | ((q.opcode ?? 0) << 11) | (spec.aa ? FLAG_AA : 0) | q.echoFlags | rcodeLow;
  w.u16(q.id);
  w.u16(flags);
  w.u16(q.questionEnd > 0 ? 1 : 0);
  w.u16(spec.answers.length);
  w.u16(spec.authority.length);
  w.u16(spec.additional.length + (edns ? 1 : 0));
  if (q.questionEnd > 0) {
    w.bytes(queryBuf.subarray(HEADER_SIZE, q.questionEnd));
    // Only owners equal to QNAME point into the question. Other names (the
    // apex in SOA/NS) are written in the zone's own case and compressed among
    // themselves: pointing them into the question would hand one client's
    // letter case to every client that gets the cached copy.
  }
  for (const rr of spec.answers) writeRecord(w, rr);
  for (const rr of spec.authority) writeRecord(w, rr);
  for (const rr of spec.additional) writeRecord(w, rr);
  if (edns) writeOpt(w, edns, spec.rcode >> 4);
  return Buffer.from(w.buf.subarray(0, w.off));
}

/**
 * A response that does not fit: header and question only, TC set, so the
 * client retries over TCP (RFC 1035 §4.2.1, RFC 6891 §7).
 */
export function truncate(full: Buffer, questionEnd: number, edns: EdnsReply | null): Buffer {
  const w = new MessageWriter(questionEnd + 11);
  w.bytes(full.subarray(0, 4));
  w.buf.writeUInt16BE(full.readUInt16BE(2) | FLAG_TC, 2);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(edns ? 1 : 0);
  w.bytes(full.subarray(HEADER_SIZE, questionEnd));
  if (edns) writeOpt(w, edns, 0);
  return Buffer.from(w.buf.subarray(0, w.off));
}

/** Copy a cached response for this query: its id, RD/CD and the exact question octets. */
export function patchCached(cached: Buffer, queryBuf: Buffer, q: Query): Buffer {
  // TypedArray.set and plain indexing: Buffer.copy's argument checks cost
  // more than the copy itself at this size.
  const out = Buffer.allocUnsafe(cached.length);
  out.set(cached);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = (cached[2]! & ~(FLAG_RD >> 8)) | (q.echoFlags >> 8);
  out[3] = (cached[3]! & ~FLAG_CD) | (q.echoFlags & 0xff);
  for (let i = HEADER_SIZE; i < q.nameEnd; i++) out[i] = queryBuf[i]!;
  return out;
}

function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    tail = [(p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!];
    text = text.slice(0, -v4[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':').filter(Boolean).map((x) => parseInt(x, 16)) : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':').filter(Boolean).map((x) => parseInt(x, 16)) : [];
  const groups = [...h, ...new Array(8 - h.length - r.length - tail.length).fill(0), ...r, ...tail] as number[];
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** A copy of a response cut to header and question with TC set: the RRL "slip" answer. */
export function slipOf(response: Buffer): Buffer {
  let off = HEADER_SIZE;
  while (off < response.length && response[off] !== 0) off += 1 + response[off]!;
  const end = Math.min(off + 5, response.length);
  const out = Buffer.alloc(end);
  response.copy(out, 0, 0, end);
  out.writeUInt16BE(response.readUInt16BE(2) | FLAG_TC, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}
