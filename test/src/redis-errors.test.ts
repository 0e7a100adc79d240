import { EventEmitter } from 'node:events';
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { closeRedis, createRedis, type RedisClient } from '../../src/redis/connection.js';
import { redisConnectionErrors, watchRedis } from '../../src/redis/errors.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

/** A logger whose lines are kept, parsed. */
function recorder() {
  const lines: Array<Record<string, any>> = [];
  const log = createLogger('test', { level: 'debug', destination: { write: (chunk: string) => void lines.push(JSON.parse(chunk)) } });
  return { log, lines, msgs: () => lines.map((l) => l.msg as string) };
}

async function counted(connection: string): Promise<number> {
  return (await redisConnectionErrors.get()).values.find((v) => v.labels.connection === connection)?.value ?? 0;
}

t.test('a real outage: counted, logged once with its cause, and its end logged', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const client = createRedis(redis.url, { connectionName: 'omega-test-watch' });
  t.teardown(() => closeRedis(client));
  const { log, lines, msgs } = recorder();
  const watch = watchRedis(client, log, 'omega-test-watch');
  await waitFor('connected', () => client.status === 'ready');

  await redis.stop();
  // ioredis retries at 100, 200, 400 ... ms: each refused attempt is one error event.
  await waitFor('several errors', () => watch.errors >= 3, 10_000, 20);
  t.ok(watch.down);
  const failed = lines.filter((l) => l.msg === 'redis connection failed; retrying');
  t.equal(failed.length, 1, 'the first error is logged, the repeats are not');
  t.match(failed[0], { level: 50, redis: 'omega-test-watch', err: { message: /ECONNREFUSED|Connection is closed/ } }, 'with its cause');
  t.equal(await counted('omega-test-watch'), watch.errors, 'every error counted');
  t.notOk(msgs().includes('redis still unreachable'), 'nothing more within a minute');

  await redis.start();
  await waitFor('back', () => msgs().includes('redis connection back'), 10_000, 20);
  t.notOk(watch.down);
  t.match(lines.at(-1), { level: 30, redis: 'omega-test-watch', downMs: Number });
  t.equal(await client.ping(), 'PONG');
});

t.test('a long outage: one line per repeatMs, saying how many errors it did not log', async (t) => {
  let now = 0;
  const client = new EventEmitter();
  const { log, lines } = recorder();
  const watch = watchRedis(client as unknown as RedisClient, log, 'omega-test-clock', { repeatMs: 1000, now: () => now });
  const fail = () => client.emit('error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
  for (; now < 2500; now += 100) fail();
  t.equal(watch.errors, 25);
  t.same(
    lines.map((l) => [l.msg, l.errorsNotLogged, l.downMs]),
    [
      ['redis connection failed; retrying', undefined, undefined],
      ['redis still unreachable', 9, 1000],
      ['redis still unreachable', 9, 2000],
    ],
  );
  t.match(lines[0], { err: { code: 'ECONNREFUSED' } });
  client.emit('ready');
  client.emit('ready');
  t.equal(lines.filter((l) => l.msg === 'redis connection back').length, 1, 'the end of the outage, once');
  now += 100;
  fail();
  t.equal(lines.at(-1)!.msg, 'redis connection failed; retrying', 'a new outage is logged again');
  t.equal(await counted('omega-test-clock'), 26);
});
