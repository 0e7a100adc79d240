#!/usr/bin/env bash
# `make run`: Redis (the one at OMEGA_REDIS_URL if it answers, else our own
# with its data under .omega/), `omega dns` on 127.0.0.1:5353 and `omega
# master` on 127.0.0.1:8080 with the local provider (its first create starts
# a manager on 127.0.0.2), in the foreground. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .omega && chmod 700 .omega

export OMEGA_REDIS_URL="${OMEGA_REDIS_URL:-redis://127.0.0.1:6379}"
export OMEGA_DNS_LISTEN="${OMEGA_DNS_LISTEN:-127.0.0.1:5353}"
export OMEGA_DNS_API_LISTEN="${OMEGA_DNS_API_LISTEN:-127.0.0.1:8053}"
ZONE="${OMEGA_ZONE:-sandbox.test}"
DNS_PORT="${OMEGA_DNS_LISTEN##*:}"
API="http://${OMEGA_DNS_API_LISTEN}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if redis-cli -u "$OMEGA_REDIS_URL" ping >/dev/null 2>&1; then
  echo "==> using the Redis at $OMEGA_REDIS_URL"
else
  port="$(sed -E 's#^.*:([0-9]+)/?.*$#\1#' <<<"$OMEGA_REDIS_URL")"
  echo "==> starting redis-server on 127.0.0.1:${port} (data in .omega/)"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.omega" --save 60 1 \
    --logfile "$PWD/.omega/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -u "$OMEGA_REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# The tokens: made once, kept private.
for name in dns-token manager-token api-token; do
  if [ ! -s ".omega/$name" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > ".omega/$name")
  fi
  chmod 600 ".omega/$name"
done
export OMEGA_DNS_TOKEN="$(cat .omega/dns-token)"
export OMEGA_MANAGER_TOKEN="$(cat .omega/manager-token)"
export OMEGA_API_TOKEN="$(cat .omega/api-token)"
export OMEGA_MASTER_LISTEN="${OMEGA_MASTER_LISTEN:-127.0.0.1:8080}"
MASTER="http://${OMEGA_MASTER_LISTEN}"

node --import=tsx src/cli.ts dns &
pids+=($!)
OMEGA_PROVIDER="${OMEGA_PROVIDER:-local}" OMEGA_DNS_API_URL="$API" node --import=tsx src/cli.ts master &
pids+=($!)

for _ in $(seq 100); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -X PUT "$API/v1/records/hello" -H "authorization: Bearer $OMEGA_DNS_TOKEN" \
  -H 'content-type: application/json' -d '{"type":"A","values":["127.0.0.1"]}' >/dev/null

cat <<MSG

  Omega DNS is serving ${ZONE} on 127.0.0.1:${DNS_PORT} (UDP and TCP); record API on ${API}.

  Resolve the demo record:
    dig @127.0.0.1 -p ${DNS_PORT} hello.${ZONE}

  Add your own (the token is in .omega/dns-token):
    curl -X PUT ${API}/v1/records/mybox -H "authorization: Bearer \$(cat .omega/dns-token)" \\
         -H 'content-type: application/json' -d '{"type":"A","values":["10.0.0.7"]}'
    dig @127.0.0.1 -p ${DNS_PORT} mybox.${ZONE} +short

  The master API is on ${MASTER} (token in .omega/api-token). Create a sandbox:
    curl -X POST ${MASTER}/v1/sandboxes -H "authorization: Bearer \$(cat .omega/api-token)" \\
         -H 'content-type: application/json' -d '{"template":"python"}'
  and resolve the hostname it answers with:
    dig @127.0.0.1 -p ${DNS_PORT} <id>.${ZONE} +short
  Run code once:
    curl -X POST ${MASTER}/v1/run -H "authorization: Bearer \$(cat .omega/api-token)" \\
         -H 'content-type: application/json' -d '{"language":"python","code":"print(6*7)"}'

  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
