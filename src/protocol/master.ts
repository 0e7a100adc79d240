/**
 * The master's public API (`/v1`): schemas of what clients send.
 */

const metadata = {
  type: 'object',
  maxProperties: 32,
  propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
  additionalProperties: { type: 'string', maxLength: 512 },
} as const;

export const createBodySchema = {
  type: 'object',
  required: ['template'],
  additionalProperties: false,
  properties: {
    template: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$' },
    timeoutSeconds: { type: 'integer', minimum: 10 },
    idleSeconds: { type: 'integer', minimum: 10 },
    metadata,
  },
} as const;

export const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$' } },
} as const;

export const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: ['creating', 'running', 'deleting', 'lost'] },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    cursor: { type: 'string', maxLength: 200 },
  },
  // metadata.<key>=<value> filters
  patternProperties: { '^metadata\\.[A-Za-z0-9_.-]{1,64}$': { type: 'string', maxLength: 512 } },
} as const;

export const timeoutBodySchema = {
  type: 'object',
  required: ['seconds'],
  additionalProperties: false,
  properties: { seconds: { type: 'integer', minimum: 1 } },
} as const;

export const runBodySchema = {
  type: 'object',
  required: ['language', 'code'],
  additionalProperties: false,
  properties: {
    language: { type: 'string', maxLength: 32 },
    code: { type: 'string', maxLength: 1 << 20 },
    stdin: { type: 'string', maxLength: 1 << 20 },
    timeoutMs: { type: 'integer', minimum: 100 },
  },
} as const;
