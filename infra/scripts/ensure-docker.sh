#!/usr/bin/env bash
# A working Docker engine: install docker.io when missing, start dockerd when
# none answers (directly: CI machines run no systemd), wait until it does.
# Checked here: overlay2 storage and the default bridge work on this kind of
# machine; published ports on 127.0.0.x work.
set -euo pipefail
here="$(dirname "$0")"
"$here/ensure-apt.sh" docker.io

docker info >/dev/null 2>&1 && exit 0

echo "==> starting the Docker engine"
if [ "$(ps -o comm= -p 1)" = "systemd" ]; then
  systemctl start docker
else
  log=/var/log/omega-dockerd.log
  [ -w /var/log ] || log="${TMPDIR:-/tmp}/omega-dockerd.log"
  nohup dockerd >"$log" 2>&1 &
fi
for _ in $(seq 120); do
  docker info >/dev/null 2>&1 && { echo "    the Docker engine is up"; exit 0; }
  sleep 0.5
done
echo "the Docker engine did not start within 60 s; see ${log:-journalctl -u docker}" >&2
exit 1
