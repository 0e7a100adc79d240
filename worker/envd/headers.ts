/**
 * A `Headers` for the worker program, in place of Node's. Node (20) builds
 * its global Headers from undici and compiles all of undici on the first
 * use: the Connect code the E2B agent runs on makes a Headers per request, so
 * the agent's first request paid for it (~15 ms here, 100 ms on a busy VM)
 * and every sandbox spoken to through E2B kept undici in its memory
 * (`node -e 'globalThis.Headers'`: +10 MiB RSS). Nothing else in the worker
 * wants undici but a multipart upload (`Response.formData()`, which brings
 * its own headers and loads undici then).
 *
 * The Fetch standard's Headers (https://fetch.spec.whatwg.org/#headers-class)
 * for what a server uses: names are case-insensitive and iterated lower case
 * and sorted; `append` joins values with ", " (`set-cookie` kept apart, as
 * getSetCookie() gives them); names must be tokens and values may not hold
 * CR, LF or NUL (a TypeError, as Node's). No guard (immutable headers) and no
 * `Symbol.toStringTag` checks: nobody here needs them.
 */

// RFC 9110 §5.1: field-name = token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

function normalizeValue(value: string): string {
  // Fetch: strip leading and trailing HTTP whitespace (tab, space, CR, LF).
  return String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

export class WorkerHeaders implements Headers {
  private readonly fields = new Map<string, string>();
  private readonly cookies: string[] = [];

  constructor(init?: ConstructorParameters<typeof Headers>[0]) {
    if (init === undefined || init === null) return;
    if (typeof (init as Headers).forEach === 'function' && !Array.isArray(init)) {
      // A Headers gives each set-cookie apart, the others combined.
      (init as Headers).forEach((value, name) => this.append(name, value));
      return;
    }
    if (Symbol.iterator in Object(init)) {
      for (const pair of init as Iterable<readonly string[]>) {
        if (pair.length !== 2) throw new TypeError('Headers: each pair must be [name, value]');
        this.append(pair[0]!, pair[1]!);
      }
      return;
    }
    for (const [name, value] of Object.entries(init as Record<string, string>)) this.append(name, value);
  }

  private static key(name: string): string {
    if (!TOKEN.test(name)) throw new TypeError(`Headers: "${name}" is an invalid header name`);
    return name.toLowerCase();
  }

  private static value(value: string): string {
    const v = normalizeValue(value);
    if (BAD_VALUE.test(v)) throw new TypeError('Headers: a header value may not contain CR, LF or NUL');
    return v;
  }

  append(name: string, value: string): void {
    const k = WorkerHeaders.key(name);
    const v = WorkerHeaders.value(value);
    if (k === 'set-cookie') this.cookies.push(v);
    const now = this.fields.get(k);
    this.fields.set(k, now === undefined ? v : `${now}, ${v}`);
  }

  set(name: string, value: string): void {
    const k = WorkerHeaders.key(name);
    const v = WorkerHeaders.value(value);
    if (k === 'set-cookie') this.cookies.splice(0, this.cookies.length, v);
    this.fields.set(k, v);
  }

  delete(name: string): void {
    const k = WorkerHeaders.key(name);
    if (k === 'set-cookie') this.cookies.length = 0;
    this.fields.delete(k);
  }

  get(name: string): string | null {
    return this.fields.get(WorkerHeaders.key(name)) ?? null;
  }

  has(name: string): boolean {
    return this.fields.has(WorkerHeaders.key(name));
  }

  getSetCookie(): string[] {
    return [...this.cookies];
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *entries(): IterableIterator<[string, string]> {
    for (const k of [...this.fields.keys()].sort()) {
      // Fetch's "sort and combine": each set-cookie on its own, the others combined.
      if (k === 'set-cookie') for (const c of this.cookies) yield [k, c];
      else yield [k, this.fields.get(k)!];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/**
 * Make it the program's global Headers. Reading Node's `globalThis.Headers`
 * is what builds undici, so the property is replaced without being read.
 */
export function installWorkerHeaders(): void {
  Object.defineProperty(globalThis, 'Headers', { value: WorkerHeaders, writable: true, configurable: true, enumerable: false });
}
