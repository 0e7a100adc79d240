import { commonSettings, stateDirSetting } from '../../src/config/common.js';
import { hostPort, loopbackV4, int, loadSettings, oneOf, type LoadOptions, type Setting, type SettingsValues } from '../../src/config/settings.js';

/**
 * `omega up`'s own settings. Everything else a child program reads (capacity,
 * pool size, limits, templates ...) is handed on from the environment as it is.
 */
export const upSettings = {
  ...commonSettings,
  stateDir: stateDirSetting,
  zone: { env: 'OMEGA_ZONE', flag: 'zone', description: 'The sandbox zone', default: 'sandbox.test', parse: (raw: string) => raw.toLowerCase().replace(/\.$/, '') } satisfies Setting<string>,
  dnsListen: { env: 'OMEGA_DNS_LISTEN', flag: 'dns-listen', description: 'Where `omega dns` answers (UDP and TCP)', default: { host: '127.0.0.1', port: 5353 }, defaultText: '127.0.0.1:5353', parse: hostPort() },
  dnsApiListen: { env: 'OMEGA_DNS_API_LISTEN', flag: 'dns-api-listen', description: 'Where the DNS record API listens', default: { host: '127.0.0.1', port: 8053 }, defaultText: '127.0.0.1:8053', parse: hostPort() },
  masterListen: { env: 'OMEGA_MASTER_LISTEN', flag: 'master-listen', description: 'Where the master (API and web client) listens', default: { host: '127.0.0.1', port: 8080 }, defaultText: '127.0.0.1:8080', parse: hostPort() },
  firstAddress: {
    env: 'OMEGA_LOCAL_FIRST_ADDRESS',
    flag: 'first-address',
    description: 'Loopback address of the first host (its manager, its sandboxes\' ports); the master adds the next ones as needed',
    default: '127.0.0.2',
    parse: loopbackV4(),
  } satisfies Setting<string>,
  managerPort: { env: 'OMEGA_LOCAL_MANAGER_PORT', flag: 'manager-port', description: 'Port of each manager\'s API on its host address', default: 7070, parse: int(1, 65_535) },
  tls: {
    env: 'OMEGA_TLS',
    flag: 'tls',
    description: 'local: https and wss with a CA this machine makes once (<state dir>/ca.pem); off: plain http and ws',
    default: 'local' as 'local' | 'off',
    parse: oneOf('local', 'off'),
  } satisfies Setting<'local' | 'off'>,
  ingressPort: {
    env: 'OMEGA_LOCAL_INGRESS_PORT',
    flag: 'ingress-port',
    description: 'Port of each host\'s TLS ingress on its address: 443 when it may be bound, else 8443 or a free one (and it says so)',
    default: 443,
    parse: int(1, 65_535),
  },
  startTimeoutMs: { env: 'OMEGA_UP_START_TIMEOUT_MS', flag: 'start-timeout-ms', description: 'How long each program has to become ready', default: 60_000, parse: int(1000, 600_000) },
};

export type UpConfig = SettingsValues<typeof upSettings>;

export function loadUpConfig(opts: LoadOptions): UpConfig {
  return loadSettings(upSettings, opts);
}
