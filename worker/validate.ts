import type { JsonSchema } from '../src/protocol/worker.js';

/**
 * Check a value against the JSON Schema subset of src/protocol/worker.ts.
 * Returns the first problem as "where: what", or null. Small on purpose:
 * the worker bundle should not carry a full validator for two dozen schemas.
 */
export function validate(schema: JsonSchema, value: unknown, where = 'params'): string | null {
  if (schema.oneOf) {
    const problems = schema.oneOf.map((s) => validate(s, value, where));
    const ok = problems.filter((p) => p === null).length;
    if (ok === 1) return null;
    if (ok > 1) return `${where}: matches more than one form`;
    // Report the form that got furthest: the one whose problem is not about an unknown property.
    return problems.find((p) => p && !p.includes('is not allowed')) ?? problems[0]!;
  }
  if (schema.enum && !schema.enum.includes(value)) return `${where}: must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  switch (schema.type) {
    case undefined:
      return null;
    case 'string':
      if (typeof value !== 'string') return `${where}: must be a string`;
      if (schema.minLength !== undefined && value.length < schema.minLength) return `${where}: must be at least ${schema.minLength} characters`;
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return `${where}: must be at most ${schema.maxLength} characters`;
      return null;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value) || (schema.type === 'integer' && !Number.isInteger(value))) return `${where}: must be ${schema.type === 'integer' ? 'a whole number' : 'a number'}`;
      if (schema.minimum !== undefined && value < schema.minimum) return `${where}: must be at least ${schema.minimum}`;
      if (schema.maximum !== undefined && value > schema.maximum) return `${where}: must be at most ${schema.maximum}`;
      return null;
    case 'boolean':
      return typeof value === 'boolean' ? null : `${where}: must be true or false`;
    case 'array': {
      if (!Array.isArray(value)) return `${where}: must be an array`;
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${where}: must have at most ${schema.maxItems} items`;
      if (!schema.items) return null;
      for (let i = 0; i < value.length; i++) {
        const p = validate(schema.items, value[i], `${where}[${i}]`);
        if (p) return p;
      }
      return null;
    }
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return `${where}: must be an object`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) return `${where}: must have at most ${schema.maxProperties} properties`;
      for (const r of schema.required ?? []) if (obj[r] === undefined) return `${where}.${r}: is required`;
      for (const k of keys) {
        const sub = schema.properties?.[k];
        if (sub) {
          const p = validate(sub, obj[k], `${where}.${k}`);
          if (p) return p;
        } else if (schema.additionalProperties === false) {
          return `${where}.${k}: is not allowed`;
        } else if (typeof schema.additionalProperties === 'object') {
          const p = validate(schema.additionalProperties, obj[k], `${where}.${k}`);
          if (p) return p;
        }
      }
      return null;
    }
  }
}
