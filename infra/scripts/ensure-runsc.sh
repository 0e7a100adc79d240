#!/usr/bin/env bash
# gVisor's runsc as an extra Docker runtime named `runsc` (the default stays
# runc), for OMEGA_SANDBOX_RUNTIME=runsc and its test. Idempotent: installs
# Debian's runsc when missing, adds the runtime to /etc/docker/daemon.json
# (every other key kept) when it is not there, and makes dockerd reload it
# with SIGHUP: runtimes are reloadable, no container stops.
#
# The flags are what works with Debian bookworm's runsc (2022-12) here:
#   --platform=ptrace  its KVM platform hangs on a paravirtualised /dev/kvm
#                      (this machine is a guest; no vmx/svm), systrap is newer;
#   --network=host     its own network stack refuses to start ("cannot run with
#                      network enabled in root network namespace": a check of
#                      /proc/sys/net/core/rmem_default that newer kernels fail
#                      in every namespace, fixed in gVisor in 2024). "host" is the
#                      container's own namespace and Docker bridge, not the host's:
#                      Omega's network and firewall apply unchanged; what is lost
#                      is gVisor's own TCP/IP stack in front of the kernel's.
set -euo pipefail
here="$(dirname "$0")"
command -v runsc >/dev/null 2>&1 || "$here/ensure-apt.sh" runsc
conf=/etc/docker/daemon.json
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then exit 0; fi
echo "==> registering gVisor (runsc) as a Docker runtime in $conf"
$SUDO mkdir -p "$(dirname "$conf")"
existing="$($SUDO cat "$conf" 2>/dev/null || echo '{}')"
merged="$(node -e '
  const c = JSON.parse(process.argv[1] || "{}");
  c.runtimes = { ...(c.runtimes ?? {}), runsc: { path: "/usr/bin/runsc", runtimeArgs: ["--platform=ptrace", "--network=host"] } };
  console.log(JSON.stringify(c, null, 2));' "$existing")"
echo "$merged" | $SUDO tee "$conf.omega-new" >/dev/null
$SUDO mv "$conf.omega-new" "$conf"
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  $SUDO systemctl reload docker
else
  $SUDO kill -HUP "$($SUDO cat /var/run/docker.pid)"
fi
for _ in $(seq 40); do
  docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && { echo "    runsc registered"; exit 0; }
  sleep 0.25
done
echo "dockerd did not take the runsc runtime; see its log" >&2
exit 1
