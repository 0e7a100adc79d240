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
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts redis-server and nsd as services on install; Omega runs its
# own instances on its own ports, so leave the system ones as they are.
