# Omega: `make run` runs it locally, `make test` runs every test.
SHELL := /bin/bash
RUN_APT := redis-server dnsutils
TEST_APT := $(RUN_APT) redis-sentinel chromium pebble libnss3-tools
BENCH_APT := dnsperf nsd

.PHONY: all deps apt-run apt-test docker runsc images web build typecheck test run bench-dns bench-dns-scale bench-sandbox bench-allocate bench-up bench-failover bench-chaos bench-tls bench-noisy bench-gvisor bench-pause bench-snapshot bench-restore bench-density bench-pool bench-control-plane bench-git bench-e2b-agent bench-e2b-create clean

all: build

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
deps: node_modules/.package-lock.json

apt-test:
	@infra/scripts/ensure-apt.sh $(TEST_APT)

## The Docker engine: installed and started when none answers.
docker:
	@infra/scripts/ensure-docker.sh

## gVisor's runsc as an extra Docker runtime (OMEGA_SANDBOX_RUNTIME=runsc; the default stays runc).
runsc: docker
	@infra/scripts/ensure-runsc.sh

## The sandbox images (debootstrap + docker build; a no-op when nothing changed).
images: deps docker
	@infra/images/build.sh

## The web client the master serves at / (esbuild bundle into dist/web/).
web: deps
	npm run build:web

build: deps web
	npm run build

typecheck: deps
	npm run typecheck

## Everything a fresh Debian machine needs (apt packages, the Docker engine,
## the sandbox images), then the typecheck and every test.
test: deps apt-test images web runsc
	npm run typecheck
	npm test

## `omega up`: Redis (if none answers), the DNS server on 127.0.0.1:5353, the
## first manager on 127.0.0.2 and the master on 127.0.0.1:8080 (more managers on
## 127.0.0.3, ... as sandboxes need them). Ctrl-C deletes the sandboxes and stops.
apt-run:
	@infra/scripts/ensure-apt.sh $(RUN_APT)

run: deps apt-run images web
	@node --import=tsx cli/cli.ts up

bench-dns: deps apt-test build
	@infra/scripts/ensure-apt.sh $(BENCH_APT)
	node --import=tsx bench/dns.ts

## Memory per name, restart and feed propagation of three DNS servers on one
## Redis at 200,000 names; BENCH_ARGS='--names 200,20000,200000 --base main'.
bench-dns-scale: deps apt-test build
	node --import=tsx bench/dns-scale.ts $(BENCH_ARGS)

bench-sandbox: deps apt-test images
	node --import=tsx bench/sandbox.ts

## The E2B agent through the real SDK beside the WebSocket protocol, one worker process (no Docker).
bench-e2b-agent: deps
	node --import=tsx bench/e2b-agent.ts

## Sandbox.create() to the end of the first commands.run('echo hi') through the SDK, beside Omega's own client.
bench-e2b-create: deps apt-test images
	node --import=tsx bench/e2b-create.ts

## A sandbox filling its workspace quota as fast as it can: its neighbour's fsync'd writes and HTTP, beside the same host idle.
bench-noisy: deps apt-test images
	node --import=tsx bench/noisy.ts

## Sandboxes under gVisor beside runc: cold create, syscalls, fork+exec.
bench-gvisor: deps apt-test images runsc
	node --import=tsx bench/gvisor.ts

## Resume of a frozen and of a stopped sandbox through the master, beside docker unpause alone.
bench-pause: deps apt-test images
	node --import=tsx bench/pause.ts

## A 100 MiB workspace of mixed files snapshotted and restored, to a directory and to S3 (s3rver).
bench-snapshot: deps apt-test images
	node --import=tsx bench/snapshot.ts

## Archive and restore, a lost host's sandbox restored on another, a named workspace back on its host and moved (100 MiB each).
bench-restore: deps apt-test images
	node --import=tsx bench/restore.ts

## What a host holds: idle sandboxes of each template, their memory (cgroup, RSS, PSS), creates as the host fills.
bench-density: deps apt-test images
	node --import=tsx bench/density.ts

## A warm pool that keeps up: a stream of creates 50 ms apart, and a burst of 30 with the pool following demand beside a fixed one.
bench-pool: deps apt-test images
	node --import=tsx bench/pool.ts

## The control plane at scale: the real master, DNS and Redis against 1,000 simulated hosts (bench/sim-host.ts), at 100 / 1,000 / 10,000 sandboxes.
bench-control-plane: deps apt-test
	node --import=tsx bench/control-plane.ts

## A create with git (a local repository of 1,000 files, served on a namespace's address) beside one without.
bench-git: deps apt-test images
	node --import=tsx bench/git.ts

bench-allocate: deps apt-test images
	node --import=tsx bench/allocate.ts

bench-up: deps apt-test images web
	node --import=tsx bench/up.ts

bench-failover: deps apt-test images
	node --import=tsx bench/failover.ts

## TLS and the per-host ingress against the plain path; Pebble issuing the wildcard through Omega's DNS.
bench-tls: deps apt-test images
	@infra/scripts/ensure-apt.sh haproxy
	node --import=tsx bench/tls.ts

## kill -9 of the master and the managers during bursts of creates and deletes: time until whole again.
bench-chaos: deps apt-test images
	node --import=tsx bench/chaos.ts

clean:
	rm -rf dist .tap
