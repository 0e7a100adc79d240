import t from 'tap';
import { commonSettings } from '../../src/config/common.js';
import { loadSettings, safeUrl } from '../../src/config/settings.js';
import { isLoopbackHost, parseRedisUrl } from '../../src/redis/url.js';

t.test('one server', async (t) => {
  t.same(parseRedisUrl('redis://127.0.0.1:6379'), { scheme: 'redis:', hosts: [{ host: '127.0.0.1', port: 6379 }], username: undefined, password: undefined, db: 0, sentinelName: undefined, tls: false });
  t.match(parseRedisUrl(' REDIS://h/3 '), { scheme: 'redis:', hosts: [{ host: 'h', port: 6379 }], db: 3 }, 'default port, database from the path');
  t.match(parseRedisUrl('rediss://user:p%40ss:w@r.internal:6380/'), { tls: true, username: 'user', password: 'p@ss:w', db: 0, hosts: [{ host: 'r.internal', port: 6380 }] });
  t.match(parseRedisUrl('redis://:pw@[::1]:7000'), { username: undefined, password: 'pw', hosts: [{ host: '::1', port: 7000 }] }, 'IPv6 without its brackets');
  t.match(parseRedisUrl('redis://:a@b@h:1'), { password: 'a@b', hosts: [{ host: 'h', port: 1 }] }, 'the last @ ends the credentials');
});

t.test('sentinel and cluster: several hosts', async (t) => {
  t.match(parseRedisUrl('redis+sentinel://:pw@s1:26379,s2,[fd00::2]:26380/mymaster?db=2'), {
    scheme: 'redis+sentinel:',
    hosts: [
      { host: 's1', port: 26379 },
      { host: 's2', port: 6379 },
      { host: 'fd00::2', port: 26380 },
    ],
    password: 'pw',
    sentinelName: 'mymaster',
    db: 2,
  });
  t.match(parseRedisUrl('redis+cluster://n1:7000,n2:7001'), { scheme: 'redis+cluster:', hosts: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], db: 0 });
});

t.test('what is refused, and why', async (t) => {
  const refused: Array<[string, RegExp]> = [
    ['127.0.0.1:6379', /must be a URL/],
    ['http://h:1', /scheme must be one of/],
    ['redis://', /host is missing/],
    ['redis://a:1,b:2', /names one server/],
    ['redis://h:99999', /port 99999/],
    ['redis://h:0', /port 0/],
    ['redis://h/x', /database number/],
    ['redis://[nope]:1', /not host:port|not an IPv6/],
    ['redis+sentinel://s1:26379', /must name the primary/],
    ['redis+sentinel://s1/m?db=x', /\?db=/],
    ['redis+cluster://n1,n2/3', /no path/],
    ['redis+cluster://n1,,n2', /host is missing/],
    ['redis://:100%zz@h', /password is not valid percent-encoding/],
  ];
  for (const [url, why] of refused) t.throws(() => parseRedisUrl(url), { message: why }, url);
});

t.test('a refused OMEGA_REDIS_URL is echoed without its password', async (t) => {
  const err = t.throws(() => loadSettings(commonSettings, { env: { OMEGA_REDIS_URL: 'redis://:hunter2hunter2@a:1,b:2' } })) as Error;
  t.match(err.message, /OMEGA_REDIS_URL \/ --redis-url: a redis:\/\/ URL names one server/);
  t.match(err.message, /redis:\/\/a:1,b:2/);
  t.notMatch(err.message, /hunter2/);
});

t.test('safeUrl drops the credentials of any URL', async (t) => {
  t.equal(safeUrl('redis://:pw@127.0.0.1:6379/0'), 'redis://127.0.0.1:6379/0');
  t.equal(safeUrl('redis+sentinel://u:pw@s1:1,s2:2/main'), 'redis+sentinel://s1:1,s2:2/main', 'several hosts, which WHATWG URL refuses');
  t.equal(safeUrl('https://ghp_token@github.com/o/r.git'), 'https://github.com/o/r.git', 'a token as the user name too');
  t.equal(safeUrl('https://a:b@c@host/x@y'), 'https://host/x@y', 'only the authority');
  t.equal(safeUrl('https://host/p'), 'https://host/p');
  t.equal(safeUrl('user:pw@host'), '[not a URL]');
});

t.test('loopback hosts', async (t) => {
  for (const h of ['localhost', '127.0.0.1', '127.1.2.3', '::1']) t.ok(isLoopbackHost(h), h);
  for (const h of ['10.0.0.2', 'redis.internal', '127.example.com', '::2']) t.notOk(isLoopbackHost(h), h);
});
