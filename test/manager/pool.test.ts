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
    return { template, containerId: `c${n++}`, address: '127.0.0.1', ip: '172.18.0.9', hostPort: 1, volume: 'v', claimSecret: 's', size: { cpus: 1, memoryMb: 512, diskMb: 0 } };
  };
  const pool = new WarmPool({ a: 5, b: 2 }, start, async () => {}, log, 2);
  pool.fill();
  await pool.whenFull();
  t.equal(most, 2, 'never more than two at once');
  t.match(pool.stats(), { a: { ready: 5, starting: 0, target: 5 }, b: { ready: 2, starting: 0, target: 2 } });
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

/** Starts that take `ms` each, counted. */
function timedStarts(ms: number) {
  let n = 0;
  const started = { count: 0 };
  const start = async (template: string): Promise<WarmContainer> => {
    started.count++;
    await new Promise((r) => setTimeout(r, ms));
    return { template, containerId: `c${n++}`, address: '127.0.0.1', ip: '172.18.0.9', hostPort: 1, volume: 'v', claimSecret: 's', size: { cpus: 1, memoryMb: 512, diskMb: 0 } };
  };
  return { start, started };
}

t.test('the pool follows demand: a burst raises its target, a quiet spell brings it back to the floor; a fixed pool stays fixed', async (t) => {
  const { start } = timedStarts(250);
  const discarded: string[] = [];
  const published: number[] = [];
  const pool = new WarmPool({ a: { floor: 1, ceiling: 6 }, fixed: 1 }, start, async (c) => void discarded.push(c.containerId), log, 4, { demandWindowMs: 1500, onReady: (tpl, n) => tpl === 'a' && published.push(n) });
  pool.fill();
  await pool.whenFull();
  t.match(pool.stats().a, { ready: 1, target: 1, floor: 1, ceiling: 6 });
  const burst = Array.from({ length: 12 }, () => pool.acquire('a'));
  const raised = pool.stats().a!.target;
  t.ok((await Promise.all(burst)).filter(Boolean).length >= 1, 'the ready one and the refills in flight serve what they can');
  t.ok(raised > 1, `the burst raised the target (${raised})`);
  await pool.whenFull();
  t.ok(pool.stats().a!.ready > 1, `and the pool grew to it (${pool.stats().a!.ready} ready)`);
  t.ok(Math.max(...published) > 1, 'each change of the ready count is published');
  for (let i = 0; i < 12; i++) await pool.acquire('fixed');
  t.equal(pool.stats().fixed!.target, 1, 'a pool whose ceiling is its floor does not grow');
  await new Promise((r) => setTimeout(r, 1500 + 2 * 1000 + 200));
  const quiet = pool.stats().a!;
  t.equal(quiet.target, 1, 'quiet for a window: the target is the floor again');
  t.ok(quiet.ready <= 2, `and the pool shrinks back, a container a tick (${quiet.ready} ready)`);
  t.ok(discarded.length >= 1, 'what it no longer needs is removed');
  await pool.drain();
  t.equal(published.at(-1), 0, 'a drained pool says it has none');
});

t.test('a create that finds the pool empty waits for the next container in turn: warm when a refill was on its way, else started for it; no pool, no wait', async (t) => {
  const { start, started } = timedStarts(80);
  const pool = new WarmPool({ a: 1, none: 0 }, start, async () => {}, log, 2);
  pool.fill();
  await pool.whenFull();
  t.match(await pool.acquire('a'), { warm: true }, 'the ready one');
  // Its refill starts a moment after the take: once it is in flight, the next create waits for it.
  await new Promise((r) => setTimeout(r, 200));
  t.match(await pool.acquire('a'), { warm: true }, 'the next create got the refill in flight: warm');
  t.match(pool.stats().a, { hits: 2, misses: 0, waited: 1 });
  await pool.whenFull();
  // Three at once: the first takes the ready one (its refill starts); the second finds nothing on its
  // way when it comes and gets a container the pool starts for it (a cold start, in turn); the third
  // finds the first's refill on its way: warm.
  const three = await Promise.all([pool.acquire('a'), pool.acquire('a'), pool.acquire('a')]);
  t.same(three.map((g) => g?.warm), [true, false, true]);
  t.match(pool.stats().a, { hits: 4, misses: 1, waited: 3 });
  t.ok(started.count >= 5);
  t.equal(await pool.acquire('none'), undefined, 'a template with no pool: the create starts its own at once');
  await pool.drain();
});
