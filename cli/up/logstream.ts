import { prettyFactory } from 'pino-pretty';

/**
 * One log stream for a whole `omega up`: every child's lines, each marked
 * with the service it came from. Omega's programs log pino JSON, which
 * pino-pretty renders (level colours, errors with their stacks, extra fields
 * on the same line); other lines (redis-server, a crash's stack trace) are
 * shown as they are behind the same time and service marks.
 */
const COLORS = ['cyan', 'magenta', 'green', 'yellow', 'blue', 'red'] as const;
const FIXED: Record<string, (typeof COLORS)[number]> = { up: 'blue', redis: 'red', dns: 'magenta', master: 'cyan', manager: 'green' };
const WIDTH = 8;

export class LogStream {
  private readonly colorOf = new Map<string, (typeof COLORS)[number]>(Object.entries(FIXED));
  private readonly pretty: (input: string) => string;
  private readonly paint: (color: string, s: string) => string;

  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    readonly colorize = Boolean((out as { isTTY?: boolean }).isTTY) && !process.env.NO_COLOR,
  ) {
    this.paint = colorize ? (c, s) => `\x1b[${ANSI[c] ?? 39}m${s}\x1b[39m` : (_c, s) => s;
    this.pretty = prettyFactory({
      colorize,
      translateTime: 'HH:MM:ss.l',
      ignore: 'pid,hostname,service',
      singleLine: true,
      messageFormat: (log, key) => `${this.label(String(log.service ?? '?'))} ${String(log[key] ?? '')}`,
    });
  }

  private label(service: string): string {
    let color = this.colorOf.get(service);
    if (!color) {
      color = COLORS[this.colorOf.size % COLORS.length]!;
      this.colorOf.set(service, color);
    }
    return this.paint(color, service.padEnd(WIDTH));
  }

  /** One line as a child printed it; `source` names the child, for lines that do not name their service. */
  line(source: string, text: string): void {
    if (text.startsWith('{')) {
      try {
        const log = JSON.parse(text) as Record<string, unknown>;
        if (typeof log.level === 'number') {
          if (log.service === undefined) log.service = source;
          this.out.write(this.pretty(JSON.stringify(log)));
          return;
        }
      } catch {
        // not JSON after all: shown as it is
      }
    }
    const d = new Date();
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
    this.out.write(`[${time}] ${this.label(source)} ${text}\n`);
  }

  /** A pino destination: `up`'s own logger writes through here too. */
  destination(source: string): { write(chunk: string): void } {
    return { write: (chunk) => chunk.split('\n').forEach((l) => l && this.line(source, l)) };
  }
}

const ANSI: Record<string, number> = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36 };
const pad = (n: number) => String(n).padStart(2, '0');
