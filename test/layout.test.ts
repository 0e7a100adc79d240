import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';

/**
 * The layout's boundaries, read off the source: what each program may import.
 * `src/` is what programs share, so it imports none of them; the worker runs
 * in untrusted containers and the web client in browsers, so each imports
 * only its protocol and a few leaf helpers.
 */
const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (/\.ts$/.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Every module specifier a file names: static imports and re-exports, and dynamic import() of a literal. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

/** A file's relative imports, as repository paths (.js written, .ts on disk). */
function localImports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return specifiers(text)
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).replace(/\.js$/, '.ts'));
}

/** Every repository file reachable from `file` by relative imports. */
function closure(file: string): Set<string> {
  const seen = new Set<string>();
  const todo = [file];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...localImports(f));
  }
  return seen;
}

t.test('the specifier scan finds every kind of import', async (t) => {
  t.same(specifiers("import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('./e.js');"), [
    './a.js',
    '../b.js',
    './c.js',
    './d.js',
    './e.js',
  ]);
});

/** `file -> dep` for each dependency `ok` refuses, so a failure names every offending import at once. */
function violations(files: string[], deps: (f: string) => Iterable<string>, ok: (dep: string) => boolean): string[] {
  const out: string[] = [];
  for (const f of files) for (const dep of deps(f)) if (!ok(dep)) out.push(`${f} -> ${dep}`);
  return out;
}

t.test('src/ imports no program', async (t) => {
  t.same(violations(sources('src'), localImports, (dep) => dep.startsWith('src/')), []);
});

t.test('worker/ imports only its protocol and a few shared leaf helpers', async (t) => {
  // Leaves with no imports of their own but node's: the PROXY line it shares with the ingress, the per-source limits it shares with the APIs.
  const allowed = new Set(['src/protocol/worker.ts', 'src/protocol/proxy.ts', 'src/config/settings.ts', 'src/lifecycle.ts', 'src/throttle.ts']);
  // And the E2B agent's protocol: its version and its code generated from the .proto files (importing only @bufbuild/protobuf).
  t.same(violations(sources('worker'), closure, (dep) => dep.startsWith('worker/') || allowed.has(dep) || dep.startsWith('src/protocol/envd/')), []);
});

t.test('web/ imports only protocol types', async (t) => {
  t.same(violations(sources('web'), closure, (dep) => dep.startsWith('web/') || /^src\/protocol\/(worker|master)\.ts$/.test(dep)), []);
});

t.test('no program imports the CLI or the worker; only the CLI starts several programs', async (t) => {
  const programs = ['dns', 'master', 'manager', 'worker', 'web'].flatMap(sources);
  t.same(violations(programs, localImports, (dep) => !dep.startsWith('cli/')), []);
  const servers = ['dns', 'master', 'manager'].flatMap(sources);
  t.same(violations(servers, localImports, (dep) => !dep.startsWith('worker/') && !dep.startsWith('web/')), []);
});
