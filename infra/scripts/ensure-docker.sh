#!/usr/bin/env bash
# A working Docker engine: install docker.io when there is no engine at all,
# start dockerd when none answers, wait (bounded) until `docker info` does.
# Idempotent: with an engine answering it only runs `docker info`.
#
# Without systemd as PID 1 (CI containers, this dev VM) dockerd is started
# directly, in its own session so a Ctrl-C of `make` does not reach it, with
# its log in /var/log/omega-dockerd.log.
#
# Checked on the dev VM (Debian bookworm, kernel 6.18, ext4 root, no systemd,
# docker.io 20.10.24): overlay2 works (dockerd picks it by itself), the
# default bridge and its iptables (nf_tables) rules work, and publishing on
# 127.0.0.1 / 127.0.0.2 with a port chosen by Docker answers. The fallbacks
# below are for machines where that is not so: dockerd already falls back from
# overlay2 by itself when the kernel lacks it, but not when overlay2 is there
# and mounting it fails (overlay on overlay in nested containers), so a start
# that fails on the storage driver is retried with vfs (slow, always works),
# and one that fails on iptables with --iptables=false (published ports still
# work through docker-proxy; containers lose outbound NAT).
set -euo pipefail
here="$(dirname "$0")"
WAIT_S="${OMEGA_DOCKER_WAIT_S:-60}"
# Extra dockerd flags, e.g. a second engine for a test: -H unix:///tmp/d.sock --data-root ...
read -r -a EXTRA <<<"${OMEGA_DOCKERD_ARGS:-}"
PIDFILE=/var/run/docker.pid
for a in "${EXTRA[@]}"; do case "$a" in --pidfile=*) PIDFILE="${a#--pidfile=}" ;; esac; done

answers() { docker info >/dev/null 2>&1; }
# Every way out with an engine answering pins docker0's MAC address first (see that script).
ready() { "$here/pin-docker-bridge-mac.sh" || echo "    could not pin docker0's MAC address; expect rare ~200 ms stalls" >&2; exit 0; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  "$here/ensure-apt.sh" docker.io
fi
answers && ready

if [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ] && [ "$(id -u)" -ne 0 ]; then
  echo "a Docker engine runs but $(id -un) may not use /var/run/docker.sock;" \
    "add the user to the docker group (sudo usermod -aG docker $(id -un)) and log in again" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  echo "==> starting the Docker engine (systemctl start docker)"
  $SUDO systemctl start docker
  for _ in $(seq $((WAIT_S * 2))); do answers && { echo "    the Docker engine is up"; ready; }; sleep 0.5; done
  echo "the Docker engine did not answer within ${WAIT_S} s; see journalctl -u docker" >&2
  exit 1
fi

log="${OMEGA_DOCKERD_LOG:-/var/log/omega-dockerd.log}"
$SUDO test -w "$(dirname "$log")" || log="${TMPDIR:-/tmp}/omega-dockerd.log"

# A dockerd that is still starting (another make, a boot script): wait for it
# rather than start a second one, which would only fail on the pid file.
if pid=$($SUDO cat "$PIDFILE" 2>/dev/null) && [ -d "/proc/$pid" ]; then
  echo "==> waiting for the Docker engine already starting (pid $pid)"
  for _ in $(seq $((WAIT_S * 2))); do answers && { echo "    the Docker engine is up"; ready; }; sleep 0.5; done
  echo "dockerd (pid $pid) runs but does not answer within ${WAIT_S} s; see $log" >&2
  exit 1
fi

# Starts dockerd with the given extra flags; 0 when it answers, 1 when it died, 2 on time-out.
start_dockerd() {
  echo "==> starting the Docker engine: dockerd ${EXTRA[*]} $* (log: $log)"
  # shellcheck disable=SC2086
  $SUDO setsid nohup dockerd "${EXTRA[@]}" "$@" >>"$log" 2>&1 </dev/null &
  local pid=$! t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$WAIT_S" ]; do
    if answers; then
      echo "    the Docker engine is up after $((SECONDS - t0)) s" \
        "(storage driver $(docker info -f '{{.Driver}}' 2>/dev/null))"
      return 0
    fi
    [ -d "/proc/$pid" ] || return 1  # (not kill -0: with sudo the process is root's)
    sleep 0.5
  done
  return 2
}

flags=()
for attempt in 1 2 3; do
  mark=$( { $SUDO wc -c <"$log"; } 2>/dev/null || echo 0)
  rc=0
  start_dockerd "${flags[@]}" || rc=$?
  [ "$rc" -eq 0 ] && ready
  if [ "$rc" -eq 2 ]; then
    echo "the Docker engine did not answer within ${WAIT_S} s; see $log" >&2
    exit 1
  fi
  # It died: look at what it said this time for a cause we can work around.
  said="$($SUDO tail -c +"$((mark + 1))" "$log")"
  if [[ " ${flags[*]} " != *" --storage-driver=vfs "* ]] && grep -qiE 'storage.driver|overlay|graphdriver' <<<"$said"; then
    echo "    dockerd failed on its storage driver; retrying with vfs"
    flags+=(--storage-driver=vfs)
  elif [[ " ${flags[*]} " != *" --iptables=false "* ]] && grep -qiE 'iptables|nat chain' <<<"$said"; then
    echo "    dockerd failed on iptables; retrying with --iptables=false (no outbound NAT for containers)"
    flags+=(--iptables=false)
  else
    break
  fi
done
echo "dockerd exited; its last words (from $log):" >&2
$SUDO tail -n 15 "$log" >&2
exit 1
