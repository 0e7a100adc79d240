import t from 'tap';
import { zoneName } from '../../src/config/settings.js';
import { SANDBOX_ID_FORMAT, newSandboxId, newSandboxToken } from '../../src/ids.js';
import { createBodySchema, TEMPLATE_NAME_PATTERN } from '../../src/protocol/master.js';
import { createSandboxBodySchema } from '../../src/protocol/manager.js';
import { SANDBOX_ID_PATTERN } from '../../src/protocol/worker.js';

t.test('the master mints 80-bit ids that every API accepts', async (t) => {
  const ids = new Set(Array.from({ length: 10_000 }, () => newSandboxId()));
  t.equal(ids.size, 10_000, 'no repeats in 10,000');
  const label = new RegExp(SANDBOX_ID_PATTERN);
  for (const id of [...ids].slice(0, 200)) {
    t.match(id, SANDBOX_ID_FORMAT);
    t.match(id, label, 'a DNS label');
  }
  t.ok(newSandboxToken().length >= 43, '256-bit token');
  t.notOk(SANDBOX_ID_FORMAT.test('abc'), 'another label is not one of the master\'s');
  t.ok(label.test('abc'), 'but every API takes it');
});

t.test('a sandbox id is one DNS label', async (t) => {
  const label = new RegExp(SANDBOX_ID_PATTERN);
  for (const ok of ['a', 'sbx1', 'a-b', 'x'.repeat(63)]) t.ok(label.test(ok), ok);
  for (const bad of ['', '-a', 'a-', 'A', 'a.b', 'a_b', 'x'.repeat(64)]) t.notOk(label.test(bad), JSON.stringify(bad));
});

t.test('the master and manager APIs take one template pattern', async (t) => {
  t.equal(createBodySchema.properties.template.pattern, TEMPLATE_NAME_PATTERN);
  t.equal(createSandboxBodySchema.properties.template.pattern, TEMPLATE_NAME_PATTERN);
  t.equal(createSandboxBodySchema.properties.id.pattern, SANDBOX_ID_PATTERN);
});

t.test('zone names', async (t) => {
  t.equal(zoneName(' Sandbox.Example.COM. '), 'sandbox.example.com', 'trimmed, lower case, no root dot');
  t.equal(zoneName('test'), 'test');
  for (const bad of ['', '.', 'a..b', '-a.test', 'a_b.test', `${'x'.repeat(64)}.test`, `${'abcdefghi.'.repeat(26)}test`]) {
    t.throws(() => zoneName(bad), { message: /domain name/ }, JSON.stringify(bad));
  }
});
