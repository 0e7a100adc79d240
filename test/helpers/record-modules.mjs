// `node --import=tsx --import=<this file> ...`: every module URL the process
// resolves through the ESM loader is appended, one a line, to the file named
// by $OMEGA_TEST_MODULE_LOG (written from the loader's thread as it resolves,
// so a process that is killed has still left its list).
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

let file;

export function initialize(data) {
  file = data.file;
}

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  appendFileSync(file, `${result.url}\n`);
  return result;
}

if (isMainThread && process.env.OMEGA_TEST_MODULE_LOG) register(import.meta.url, { data: { file: process.env.OMEGA_TEST_MODULE_LOG } });
