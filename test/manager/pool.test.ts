// The warm pool's refill, without Docker: starts are the test's own promises.
import t from 'tap';
import { WarmPool, type WarmContainer } from '../../manager/pool.js';
import { createLogger } from '../../src/log.js';

const log = createLogger('pool', { level: 'silent' });

t.test('a refill starts at most `parallel` containers at once, templates taking turns, until every pool is full', async (t) => {
  let inFlight = 0;
  let most = 0;
  const order: string[] = [];
  let n = 0;
  const start = async (template: string): Promise<WarmContainer> => {
    order.push(template);
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    return { template, containerId: `c${n++}`, address: '127.0.0.1', ip: '172.18.0.9', hostPort: 1, volume: 'v', claimSecret: 's' };
  };
  const pool = new WarmPool({ a: 5, b: 2 }, start, async () => {}, log, 2);
  pool.fill();
  await pool.whenFull();
  t.equal(most, 2, 'never more than two at once');
  t.same(pool.stats(), { a: { ready: 5, starting: 0, target: 5 }, b: { ready: 2, starting: 0, target: 2 } });
  t.same(order.slice(0, 4).sort(), ['a', 'a', 'b', 'b'], 'b is not left until a is full');
  t.ok(pool.take('a'));
  await pool.whenFull();
  t.equal(pool.stats().a!.ready, 5, 'a take refills');
  await pool.drain();
});

t.test('a template whose start fails waits out its backoff instead of retrying at once', async (t) => {
  let calls = 0;
  const pool = new WarmPool(
    { a: 3 },
    async () => {
      calls++;
      throw new Error('no image');
    },
    async () => {},
    log,
    2,
  );
  pool.fill();
  await new Promise((r) => setTimeout(r, 200));
  t.equal(calls, 2, 'the two first starts failed; none retried within the backoff');
  await pool.drain();
});
