import type { HostPort } from '../../src/config/settings.js';

/** What `omega up` prints once everything answers: where to go and what to try. */
export function nextSteps(o: { masterUrl: string; stateDir: string; dnsListen: HostPort; zone: string }, color: boolean): string {
  const b = (s: string) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[22m` : s);
  const token = `$(cat ${o.stateDir}/api-token)`;
  const dnsHost = o.dnsListen.host === '0.0.0.0' ? '127.0.0.1' : o.dnsListen.host;
  return `
  ${b('Omega is up.')}

  Web client    ${b(`${o.masterUrl}/`)}
                ${dim(`sign in with the API token: cat ${o.stateDir}/api-token`)}

  Create a sandbox:
    curl -s -X POST ${o.masterUrl}/v1/sandboxes \\
      -H "authorization: Bearer ${token}" \\
      -H 'content-type: application/json' -d '{"template":"python"}'
    ${dim('or: npm run -s omega -- sandbox create')}

  Resolve the hostname it answers with:
    dig @${dnsHost} -p ${o.dnsListen.port} <id>.${o.zone} +short

  List sandboxes and hosts:
    npm run -s omega -- sandbox list
    npm run -s omega -- hosts

  Ctrl-C deletes the sandboxes and stops everything.

`;
}
