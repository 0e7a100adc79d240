import type { HostPort } from '../../src/config/settings.js';
import { e2bApiKey } from '../../src/e2b-key.js';

/** What `omega up` prints once everything answers: where to go and what to try. */
export function nextSteps(
  o: { masterUrl: string; stateDir: string; dnsListen: HostPort; zone: string; apiToken: string; caFile: string | null; ingressPort: number | null },
  color: boolean,
): string {
  const b = (s: string) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[22m` : s);
  const token = `$(cat ${o.stateDir}/api-token)`;
  const dnsHost = o.dnsListen.host === '0.0.0.0' ? '127.0.0.1' : o.dnsListen.host;
  // The token rides in the fragment, which a browser never sends to a server; the page drops it from the address bar once read.
  const signIn = `${o.masterUrl}/#token=${encodeURIComponent(o.apiToken)}`;
  const trust = o.caFile
    ? `
  https with the local CA ${b(o.caFile)} (made once for this machine; its key beside it, mode 600).
  Trust it once:
    browser       import it as an authority (Chrome: Settings > Privacy and security > Security >
                  Manage certificates > Authorities; Firefox: Settings > Certificates), or on Debian:
                  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n omega-local -i ${o.caFile}
    Node clients  NODE_EXTRA_CA_CERTS=${o.caFile}
    curl          --cacert ${o.caFile}
  Sandboxes:    wss://<id>.${o.zone}${o.ingressPort === 443 ? '' : `:${o.ingressPort}`}/, previews https://<port>-<id>.${o.zone}${o.ingressPort === 443 ? '' : `:${o.ingressPort}`}/
`
    : '';
  const curlCa = o.caFile ? ` --cacert ${o.caFile}` : '';
  return `
  ${b('Omega is up.')}

  Web client    ${b(`${o.masterUrl}/`)}
  Sign in       ${signIn}
                ${dim(`(the link carries the API token; it is also in ${o.stateDir}/api-token)`)}
${trust}
  Create a sandbox:
    curl -s${curlCa} -X POST ${o.masterUrl}/v1/sandboxes \\
      -H "authorization: Bearer ${token}" \\
      -H 'content-type: application/json' -d '{"template":"python"}'
    ${dim('or: npm run -s omega -- sandbox create')}

  The E2B SDK (docs/e2b.md; its sandbox URLs need the ingress on port 443):
    E2B_API_KEY=${e2bApiKey(o.apiToken)} E2B_API_URL=${o.masterUrl} E2B_DOMAIN=${o.zone}${o.caFile ? ` NODE_EXTRA_CA_CERTS=${o.caFile}` : ''}

  Resolve the hostname it answers with:
    dig @${dnsHost} -p ${o.dnsListen.port} <id>.${o.zone} +short

  List sandboxes and hosts:
    npm run -s omega -- sandbox list
    npm run -s omega -- hosts

  Ctrl-C deletes the sandboxes and stops everything.

`;
}
