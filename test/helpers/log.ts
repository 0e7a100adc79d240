import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';

/** A real pino logger (at `level`) whose lines are kept, to check what was, or was not, logged. */
export function capturedLogger(level = 'trace'): { log: Logger; text(): string; lines(msg: string): string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return {
    log: createLogger('master', { level, destination }),
    text: () => lines.join(''),
    lines: (msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}`)),
  };
}
