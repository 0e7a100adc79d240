import { isIPv4, isIPv6 } from 'node:net';
import { OmegaError } from '../errors.js';

/**
 * The contract of the DNS server's record API (`/v1/records`, `/v1/changes`):
 * types, name rules and JSON schemas, shared by the server and its clients.
 */

export const RECORD_TYPES = ['A', 'AAAA', 'TXT'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export interface RecordSet {
  ttl: number;
  values: string[];
}
/** Every record set of one name, by type. */
export type NameRecords = Partial<Record<RecordType, RecordSet>>;

export interface Change {
  action: 'UPSERT' | 'DELETE';
  /** Relative to the zone, lower case ("abc", "*.abc", "_acme-challenge.abc"). */
  name: string;
  type?: RecordType;
  ttl?: number;
  values?: string[];
  /** DELETE only: no failure when there is nothing to delete (idempotent removal of a sandbox's names). */
  ifExists?: boolean;
}

/**
 * The preview rule: `<port>-<label>` (port 1-65535, no leading zero) stands
 * for `<label>`'s preview of that port, in one label, so the zone's one
 * wildcard certificate covers every preview. The DNS server answers it with
 * `<label>`'s addresses; the ingress routes it to `<label>`'s worker.
 */
const PORT_LABEL = /^([1-9][0-9]{0,4})-(.+)$/;
export function splitPortLabel(label: string): { port: number; base: string } | null {
  const m = PORT_LABEL.exec(label);
  if (!m || Number(m[1]) > 65535) return null;
  return { port: Number(m[1]), base: m[2]! };
}

export const MAX_TTL_SECONDS = 604_800;
export const MAX_VALUES = 64;
/** One TXT value becomes one record of up to this many octets, split into 255-octet strings. */
export const MAX_TXT_OCTETS = 2048;

// RFC 1035 §2.3.1 preferred syntax, plus '_' for service/ACME labels
// (RFC 8552) which are routinely placed in host zones.
const LABEL = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;

/**
 * Turn an API name into its zone-relative lower-case form.
 *
 * Zone-file convention (RFC 1035 §5.1): a name with a trailing dot is fully
 * qualified; one ending in the zone is taken as fully qualified too; any other
 * name is relative to the zone. A fully qualified name outside the zone, the
 * apex itself (its SOA and NS come from configuration) and malformed labels
 * are refused with a message that names the problem.
 */
export function normalizeName(input: string, zone: string): string {
  const raw = input.trim().toLowerCase();
  if (raw === '' || raw === '.') throw new OmegaError('INVALID_NAME', 'name is empty');
  const absolute = raw.endsWith('.');
  const name = absolute ? raw.slice(0, -1) : raw;
  let relative: string;
  if (name === zone) {
    throw new OmegaError('RESERVED_NAME', `${zone} is the zone apex; its SOA and NS records come from the server's configuration`);
  } else if (name.endsWith(`.${zone}`)) {
    relative = name.slice(0, -(zone.length + 1));
  } else if (absolute) {
    throw new OmegaError('NAME_OUTSIDE_ZONE', `${input} is not inside the zone ${zone}`);
  } else {
    relative = name;
  }
  const fqdnLength = relative.length + 1 + zone.length;
  if (fqdnLength > 253) {
    throw new OmegaError('INVALID_NAME', `${input} is ${fqdnLength} characters as a full name; at most 253 fit in DNS`);
  }
  const labels = relative.split('.');
  labels.forEach((label, i) => {
    if (label === '*' && i === 0) return; // RFC 4592: the asterisk label only leads
    if (label.length === 0) throw new OmegaError('INVALID_NAME', `${input} has an empty label`);
    if (label.length > 63) {
      throw new OmegaError('INVALID_NAME', `label "${label.slice(0, 20)}..." is ${label.length} octets; at most 63 are allowed`);
    }
    if (!LABEL.test(label)) {
      throw new OmegaError(
        'INVALID_NAME',
        `label "${label}" may hold only letters, digits, '-' and '_', not starting or ending with '-'` +
          (label.includes('*') ? "; '*' is allowed only as the whole first label" : ''),
      );
    }
  });
  return relative;
}

export function fqdn(relative: string, zone: string): string {
  return `${relative}.${zone}`;
}

/** Check and canonicalize the values of one record set; the error says which value is wrong and why. */
export function normalizeValues(type: RecordType, values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    let norm: string;
    if (type === 'A') {
      if (!isIPv4(v)) throw new OmegaError('INVALID_RECORD', `${JSON.stringify(v)} is not an IPv4 address (A record)`);
      norm = v;
    } else if (type === 'AAAA') {
      if (!isIPv6(v) || v.includes('%')) {
        throw new OmegaError('INVALID_RECORD', `${JSON.stringify(v)} is not an IPv6 address (AAAA record)`);
      }
      norm = v.toLowerCase();
    } else {
      const octets = Buffer.byteLength(v, 'utf8');
      if (octets > MAX_TXT_OCTETS) {
        throw new OmegaError('INVALID_RECORD', `a TXT value is ${octets} octets; at most ${MAX_TXT_OCTETS} are allowed`);
      }
      norm = v;
    }
    if (!out.includes(norm)) out.push(norm); // an RRset is a set (RFC 2181 §5)
  }
  return out;
}

// ---- JSON schemas (fastify validates every route with these) -------------

export const recordTypeSchema = { type: 'string', enum: [...RECORD_TYPES] } as const;

const valuesSchema = {
  type: 'array',
  minItems: 1,
  maxItems: MAX_VALUES,
  items: { type: 'string', minLength: 0, maxLength: MAX_TXT_OCTETS },
} as const;

const ttlSchema = { type: 'integer', minimum: 0, maximum: MAX_TTL_SECONDS } as const;

export const nameParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 300 } },
} as const;

export const putRecordBodySchema = {
  type: 'object',
  required: ['type', 'values'],
  additionalProperties: false,
  properties: { type: recordTypeSchema, values: valuesSchema, ttl: ttlSchema },
} as const;

export const deleteRecordQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { type: recordTypeSchema },
} as const;

export const listRecordsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string', maxLength: 253 },
    cursor: { type: 'string', maxLength: 300 },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

export const changesBodySchema = {
  type: 'object',
  required: ['changes'],
  additionalProperties: false,
  properties: {
    changes: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: {
        type: 'object',
        required: ['action', 'name'],
        additionalProperties: false,
        properties: {
          action: { type: 'string', enum: ['UPSERT', 'DELETE'] },
          name: { type: 'string', minLength: 1, maxLength: 300 },
          type: recordTypeSchema,
          values: valuesSchema,
          ttl: ttlSchema,
          ifExists: { type: 'boolean' },
        },
        // An UPSERT needs a type and values; a DELETE without a type removes the name.
        if: { properties: { action: { const: 'UPSERT' } } },
        then: { required: ['type', 'values'] },
      },
    },
  },
} as const;

/** POST /v1/lookup: which of these names have records (a reconciler's check of a page of sandboxes, one request). */
export const lookupBodySchema = {
  type: 'object',
  required: ['names'],
  additionalProperties: false,
  properties: {
    names: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 300 } },
  },
} as const;

export interface LookupBody {
  names: string[];
}

export interface PutRecordBody {
  type: RecordType;
  values: string[];
  ttl?: number;
}
export interface ChangesBody {
  changes: Array<{ action: 'UPSERT' | 'DELETE'; name: string; type?: RecordType; values?: string[]; ttl?: number; ifExists?: boolean }>;
}
