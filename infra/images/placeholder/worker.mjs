// Stands in for the worker until manager/worker/ exists: /healthz and the claim only.
import http from 'node:http';
let claimed = false;
http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end(JSON.stringify({ status: 'ok', claimed }));
  if (req.url === '/_omega/claim' && req.method === 'POST' && req.headers.authorization === `Bearer ${process.env.OMEGA_WORKER_CLAIM_SECRET}`) {
    claimed = true;
    return res.end('{}');
  }
  res.statusCode = 401;
  res.end();
}).listen(8080, '0.0.0.0');
