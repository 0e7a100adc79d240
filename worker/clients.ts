import type { EventName, Events } from '../src/protocol/worker.js';

/** What the rest of the worker needs of one connected client. */
export interface Client {
  readonly id: string;
  readonly closed: boolean;
  send<E extends EventName>(event: E, data: Events[E]): void;
  /** Run `fn` when the client goes; one callback per key (re-registering replaces it). */
  onClose(key: string, fn: () => void): void;
  offClose(key: string): void;
}

/** Every connected client, for events that go to all of them. */
export class Clients {
  private readonly all = new Map<string, Client>();

  add(client: Client): void {
    this.all.set(client.id, client);
    client.onClose('clients', () => this.all.delete(client.id));
  }

  get size(): number {
    return this.all.size;
  }

  /** Send to every client, except the one whose id is `except` (the author of a change). */
  broadcast<E extends EventName>(event: E, data: Events[E], except?: string | null): void {
    for (const c of this.all.values()) if (c.id !== except) c.send(event, data);
  }

  list(): Client[] {
    return [...this.all.values()];
  }
}
