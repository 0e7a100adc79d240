import dgram from 'node:dgram';
import net from 'node:net';
import t from 'tap';
import { buildQuery, dig, startDns } from '../helpers/dns.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis);
await dns.call('PUT', '/v1/records/fuzz', { type: 'A', values: ['10.40.0.1'] });

/** A small deterministic PRNG, so a failure can be replayed from its seed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

t.test('thousands of random and mutated packets never stop the server', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 100000);
  t.comment(`FUZZ_SEED=${seed}`);
  const rnd = prng(seed);
  const valid = [
    buildQuery('fuzz.sandbox.test', 'A'),
    buildQuery('fuzz.sandbox.test', 'TXT', { edns: {} }),
    buildQuery('x.fuzz.sandbox.test', 'AAAA', { edns: { udpSize: 4096 } }),
    buildQuery('sandbox.test', 'NS'),
  ];
  const packets: Buffer[] = [];
  for (let i = 0; i < 1500; i++) {
    const len = Math.floor(rnd() * 600);
    packets.push(Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256))));
  }
  for (let i = 0; i < 2500; i++) {
    const p = Buffer.from(valid[i % valid.length]!);
    const flips = 1 + Math.floor(rnd() * 6);
    for (let f = 0; f < flips; f++) p[Math.floor(rnd() * p.length)] = Math.floor(rnd() * 256);
    // Sometimes cut or extend it, or make it huge.
    const r = rnd();
    if (r < 0.15) packets.push(p.subarray(0, Math.floor(rnd() * p.length)));
    else if (r < 0.25) packets.push(Buffer.concat([p, Buffer.alloc(Math.floor(rnd() * 2000), 0xff)]));
    else if (r < 0.27) packets.push(Buffer.concat([p, Buffer.alloc(60000, 0x3f)]));
    else packets.push(p);
  }
  const sock = dgram.createSocket('udp4');
  let replies = 0;
  sock.on('message', () => replies++);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  for (let i = 0; i < packets.length; i++) {
    sock.send(packets[i]!, dns.port, '127.0.0.1');
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  // And the same garbage over TCP, framed and unframed.
  for (let i = 0; i < 50; i++) {
    await new Promise<void>((resolve) => {
      const c = net.connect(dns.port, '127.0.0.1', () => {
        const p = packets[Math.floor(rnd() * packets.length)]!;
        const framed = rnd() < 0.5;
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(Math.min(p.length, 65535));
        c.end(framed ? Buffer.concat([frame, p]) : p);
      });
      c.on('error', () => resolve());
      c.on('close', () => resolve());
      c.setTimeout(300, () => c.destroy());
    });
  }
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  t.ok(replies > 0, `${replies} of ${packets.length} packets got some answer`);
  const r = await dig(dns.port, ['fuzz.sandbox.test', 'A', '+short']);
  t.equal(r.raw.trim(), '10.40.0.1', 'a normal query over UDP still answers');
  const tcp = await dig(dns.port, ['fuzz.sandbox.test', 'A', '+short', '+tcp']);
  t.equal(tcp.raw.trim(), '10.40.0.1', 'and over TCP');
  t.ok(dns.server.counters.dropped > 0, 'unreadable packets were dropped');
});
