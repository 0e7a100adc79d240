import t from 'tap';
import { nextSteps } from '../../cli/up/banner.js';
import { e2bApiKey } from '../../src/e2b-key.js';

t.test('the E2B key: e2b_ and hex, one per token, printed by omega up', async (t) => {
  const key = e2bApiKey('token-one-0123456789');
  t.match(key, /^e2b_[0-9a-f]{64}$/, 'the form strict SDK releases check');
  t.equal(e2bApiKey('token-one-0123456789'), key, 'the same token, the same key (no storage needed)');
  t.not(e2bApiKey('token-two-0123456789'), key, 'another token, another key');
  t.notMatch(key, /token-one/, 'the token is not in it');
  const banner = nextSteps({ masterUrl: 'https://127.0.0.1:8080', stateDir: '.omega', dnsListen: { host: '127.0.0.1', port: 5353 }, zone: 'sandbox.test', apiToken: 'token-one-0123456789', caFile: '.omega/ca.pem', ingressPort: 443 }, false);
  t.match(banner, `E2B_API_KEY=${key} E2B_API_URL=https://127.0.0.1:8080 E2B_DOMAIN=sandbox.test NODE_EXTRA_CA_CERTS=.omega/ca.pem`);
});
