#!/usr/bin/env bash
# Give Docker's default bridge (docker0) a fixed MAC address.
#
# Linux gives a bridge without an address of its own the lowest MAC address
# among its ports, so docker0's address changes as containers (their veth
# ports) come and go. A packet a container has just sent to the old address is
# lost, and TCP retransmits it: 200 ms later for data, 1 s + 2 s later for a
# SYN. Seen here as /v1/run and first-request outliers of ~250 ms, ~700 ms and
# ~3 s while the warm pool refilled (a new container joined the bridge) as a
# sandbox answered; with the address pinned, 0 outliers in 72 runs where there
# had been about one in eight. An address set explicitly (addr_assign_type 3)
# is never changed by the kernel. Derived from the bridge's IPv4 address, the
# way Docker derives its containers' (02:42 + the four octets).
set -euo pipefail
BRIDGE="${1:-docker0}"
sys="/sys/class/net/$BRIDGE"
[ -d "$sys" ] || exit 0
[ "$(cat "$sys/addr_assign_type")" = 3 ] && exit 0
ip4="$(ip -4 -o addr show dev "$BRIDGE" | awk '{print $4}' | cut -d/ -f1 | head -n 1)"
[ -n "$ip4" ] || exit 0
# shellcheck disable=SC2086
mac="$(printf '02:42:%02x:%02x:%02x:%02x' ${ip4//./ })"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO ip link set dev "$BRIDGE" address "$mac"
echo "    $BRIDGE keeps the MAC address $mac (infra/scripts/pin-docker-bridge-mac.sh says why)"
