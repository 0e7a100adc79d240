#!/usr/bin/env bash
# Install the Debian packages given as arguments when any is missing.
# Says what it will install before it asks for root.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "==> installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  echo "    (this needs root; sudo will ask for your password)"
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Progress: apt numbers each download (Get:N) after saying how many packages
# and megabytes it needs; on a terminal dpkg also draws a percentage bar.
progress=()
[ -t 1 ] && progress=(-o Dpkg::Progress-Fancy=1)
echo "    [1/2] apt-get update"
$SUDO apt-get update -q
echo "    [2/2] apt-get install (downloads are numbered; dpkg then unpacks and sets up each)"
$SUDO apt-get install -y --no-install-recommends "${progress[@]}" "${missing[@]}"
echo "    installed: ${missing[*]}"
# Debian starts redis-server and nsd as services on install; Omega runs its
# own instances on its own ports, so leave the system ones as they are.
