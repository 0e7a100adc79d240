import type { Clients } from './clients.js';
import type { Handlers } from './dispatch.js';
import type { Files } from './files.js';
import type { Preview } from './preview.js';
import type { Processes } from './processes.js';
import type { Terminals } from './terminals.js';

export interface MethodDeps {
  files: Files;
  terminals: Terminals;
  processes: Processes;
  preview: Preview;
  clients: Clients;
}

/** Every protocol method, by name, bound to the component that serves it. */
export function methods({ files, terminals, processes, preview, clients }: MethodDeps): Handlers {
  return {
    ping: () => ({ time: Date.now() }),
    'fs.list': (p) => files.list(p),
    'fs.read': (p) => files.read(p),
    'fs.write': (p, c) => files.write(p, c.id),
    'fs.mkdir': (p, c) => files.mkdir(p, c.id),
    'fs.rename': (p, c) => files.rename(p, c.id),
    'fs.delete': (p, c) => files.delete(p, c.id),
    'fs.stat': (p) => files.stat(p),
    'term.open': (p, c) => terminals.open(p, c),
    'term.input': (p) => terminals.input(p),
    'term.resize': (p) => terminals.resize(p),
    'term.close': (p) => terminals.close(p),
    'term.list': () => terminals.list(),
    'term.attach': (p, c) => terminals.attach(p, c),
    'term.detach': (p, c) => terminals.detach(p, c),
    'proc.run': (p, c) => processes.run(p, c),
    'proc.input': (p) => processes.input(p),
    'proc.kill': (p) => processes.kill(p),
    'proc.list': () => processes.list(),
    'proc.attach': (p, c) => processes.attach(p, c),
    'proc.detach': (p, c) => processes.detach(p, c),
    'preview.setPublic': (p) => {
      if (p.public) preview.publicPorts.add(p.port);
      else preview.publicPorts.delete(p.port);
      // A sandbox created with publicPreviews keeps every port public: the answer says what is so, not what was asked.
      const now = { port: p.port, public: preview.isPublic(p.port) };
      clients.broadcast('preview.changed', now);
      return now;
    },
    'preview.list': () => ({ public: [...preview.publicPorts].sort((a, b) => a - b), ...(preview.allPublic ? { all: true as const } : {}) }),
  };
}
