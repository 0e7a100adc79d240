// The compact zone: one Map of relative names to integers over interned,
// shared record sets. What it must keep: every record type as written, the
// empty non-terminals of RFC 4592, and sets freed when no name has them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { NameRecords } from '../../src/protocol/dns.js';
import { readSnapshot, writeSnapshot } from '../../dns/snapshot-file.js';
import { ZoneData } from '../../dns/zone-data.js';
import { Zone } from '../../dns/zone.js';

const ORIGIN = 'sandbox.test';

/** One of each type, with several values in an order that is not sorted, and TTLs that differ. */
const EVERY_TYPE: NameRecords = {
  A: { ttl: 30, values: ['10.0.0.9', '10.0.0.1'] },
  AAAA: { ttl: 60, values: ['2001:db8::2', '2001:db8::1'] },
  TXT: { ttl: 5, values: ['v=one two', '', 'ünïcödé "quoted" \\ back', 'x'.repeat(2048)] },
};

t.test('every record type round-trips through the zone, values in their order', async (t) => {
  const d = new ZoneData();
  d.set('all', EVERY_TYPE);
  t.same(d.get('all'), EVERY_TYPE);
  d.set('a-only', { A: { ttl: 1, values: ['192.0.2.1'] } });
  t.same(d.get('a-only'), { A: { ttl: 1, values: ['192.0.2.1'] } });
  t.throws(() => ((d.get('all')!.A!.values as string[]).push('10.9.9.9')), 'a shared set cannot be changed through a name');
  t.equal(d.size, 2);
});

t.test('names with the same record sets share one object; a set no name has is dropped', async (t) => {
  const d = new ZoneData();
  const host = (): NameRecords => ({ A: { ttl: 60, values: ['10.1.0.1'] } });
  for (let i = 0; i < 100; i++) {
    d.set(`sb${i}`, host());
    d.set(`*.sb${i}`, host());
  }
  t.equal(d.sets.size, 1, 'one set for 200 names');
  t.equal(d.get('sb1'), d.get('*.sb99'), 'the same object');
  d.set('sb1', { A: { ttl: 60, values: ['10.1.0.2'] } });
  t.equal(d.sets.size, 2);
  for (let i = 0; i < 100; i++) {
    d.set(`sb${i}`, null);
    d.set(`*.sb${i}`, null);
  }
  t.equal(d.sets.size, 0, 'every set released');
  t.equal(d.size, 0);
  // Ids of released sets are handed out again: a new set gets its own records, not an old one's.
  d.set('new', { TXT: { ttl: 9, values: ['fresh'] } });
  t.same(d.get('new'), { TXT: { ttl: 9, values: ['fresh'] } });
  t.notOk(d.has('sb1'));
});

t.test('empty non-terminals exist while names with records are below them (RFC 4592 §2.2.2)', async (t) => {
  const d = new ZoneData();
  d.set('a.b.c', { A: { ttl: 60, values: ['10.0.0.1'] } });
  t.ok(d.has('b.c'));
  t.ok(d.has('c'));
  t.equal(d.get('b.c'), undefined, 'exists, owns nothing');
  t.equal(d.size, 1, 'only names with records count');
  d.set('c', { TXT: { ttl: 60, values: ['own'] } });
  d.set('a.b.c', null);
  t.notOk(d.has('b.c'), 'gone with the last name below it');
  t.ok(d.has('c'), 'keeps its own records');
  d.set('c', null);
  t.notOk(d.has('c'));
  // Many names below one: past what fits a small integer beside the set.
  for (let i = 0; i < 300; i++) d.set(`n${i}.many`, { A: { ttl: 60, values: ['10.0.0.2'] } });
  d.set('many', { A: { ttl: 60, values: ['10.0.0.3'] } });
  t.same(d.get('many'), { A: { ttl: 60, values: ['10.0.0.3'] } });
  for (let i = 0; i < 300; i++) d.set(`n${i}.many`, null);
  t.same(d.get('many'), { A: { ttl: 60, values: ['10.0.0.3'] } }, 'its own set intact after its 300 names below are gone');
  d.set('many', null);
  t.notOk(d.has('many'));
});

t.test('the zone resolves exact names, wildcards (RFC 4592) and the apex wildcard', async (t) => {
  const z = new Zone(ORIGIN);
  const d = new ZoneData();
  d.set('abc', { A: { ttl: 60, values: ['10.0.0.1'] } });
  d.set('*.abc', { A: { ttl: 60, values: ['10.0.0.2'] } });
  d.set('x.empty.abc', { A: { ttl: 60, values: ['10.0.0.3'] } });
  z.replace(d, 7, '1-0', true);
  t.same(z.resolve('abc.sandbox.test'), { node: d.get('abc'), wildcard: false });
  t.same(z.resolve('3000.abc.sandbox.test'), { node: d.get('*.abc'), wildcard: true });
  t.same(z.resolve('deep.er.abc.sandbox.test'), { node: d.get('*.abc'), wildcard: true });
  t.same(z.resolve('empty.abc.sandbox.test'), { node: null, wildcard: false }, 'an empty non-terminal is NODATA');
  t.equal(z.resolve('y.empty.abc.sandbox.test'), null, 'an empty non-terminal blocks the wildcard above it');
  t.equal(z.resolve('other.sandbox.test'), null);
  t.equal(z.resolve('abc.other.test'), null, 'outside the zone');
  z.apply([['*', { A: { ttl: 60, values: ['10.0.0.4'] } }]], 8, '2-0');
  t.same(z.resolve('other.sandbox.test'), { node: { A: { ttl: 60, values: ['10.0.0.4'] } }, wildcard: true }, 'the apex wildcard');
  t.equal(z.serial, 8);
  t.equal(z.feedId, '2-0');
});

t.test('a snapshot file holds the zone exactly; a damaged or foreign one is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'omega-dns-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const z = new Zone(ORIGIN);
  const d = new ZoneData();
  d.set('all', EVERY_TYPE);
  d.set('*.all', EVERY_TYPE);
  d.set('_acme-challenge.x.y', { TXT: { ttl: 60, values: ['token'] } });
  for (let i = 0; i < 50_000; i++) d.set(`sb${i}`, { A: { ttl: 60, values: [`10.0.${i % 200}.1`] } });
  z.replace(d, 1234, '1700000000000-3', true);
  const file = join(dir, 'zone.snap');
  const w = await writeSnapshot(file, z, { yieldBetweenSlices: true });
  t.equal(w.names, 50_003);
  const back = await readSnapshot(file, ORIGIN);
  t.ok(back);
  t.equal(back!.serial, 1234);
  t.equal(back!.feedId, '1700000000000-3');
  t.same([...back!.data.entries()].sort(), [...d.entries()].sort(), 'every name with every record set');
  t.equal(back!.data.sets.size, d.sets.size, 'sets still shared');
  t.ok(back!.data.has('x.y') && back!.data.has('y'), 'empty non-terminals rebuilt');

  t.equal(await readSnapshot(join(dir, 'none'), ORIGIN), null, 'no file: nothing');
  await t.rejects(readSnapshot(file, 'other.test'), { name: 'SnapshotError' }, 'another zone');
  const bytes = readFileSync(file);
  writeFileSync(join(dir, 'cut'), bytes.subarray(0, bytes.length - 3));
  await t.rejects(readSnapshot(join(dir, 'cut'), ORIGIN), { name: 'SnapshotError' }, 'truncated');
  writeFileSync(join(dir, 'junk'), 'not a snapshot at all');
  await t.rejects(readSnapshot(join(dir, 'junk'), ORIGIN), { name: 'SnapshotError' }, 'not a snapshot');
});
