#!/bin/bash
# Omega host bootstrap: the user data of an instance the ec2 provider launches
# (master/providers/ec2.ts fills each placeholder in the values block below
# with a single-quoted word).
# cloud-init runs it once, as root, on the first boot of a Debian 12 instance;
# its output is in /var/log/cloud-init-output.log.
#
#   1. Debian packages: docker.io, git, make, debootstrap, and g++/python3
#      (node-pty is compiled on Linux)
#   2. the instance id and private IP from the metadata service (IMDSv2)
#   3. Node.js from nodejs.org: SHASUMS256.txt checked against its signature
#      with the release keys from github.com/nodejs/release-keys, the tarball
#      against SHASUMS256.txt (and against OMEGA_EC2_NODE_SHA256 when pinned)
#   4. Omega at the configured source into /opt/omega: npm ci, npm run build,
#      make images
#   5. /etc/omega/manager.env (mode 600) and the omega-manager unit, started
#
# A step already done (an AMI baked from a host that ran this) is skipped, so
# such a host is up in seconds. The values include secrets (the manager token,
# the Redis URL): no `set -x` here, and nothing below prints them.
set -Eeuo pipefail

# ---- values (filled by the provider) ----
OMEGA_SOURCE=@@OMEGA_SOURCE@@
OMEGA_SOURCE_KIND=@@OMEGA_SOURCE_KIND@@
OMEGA_REF=@@OMEGA_REF@@
OMEGA_SHA256=@@OMEGA_SHA256@@
NODE_VERSION=@@NODE_VERSION@@
NODE_SHA256=@@NODE_SHA256@@
MANAGER_PORT=@@MANAGER_PORT@@
MANAGER_ENV=@@MANAGER_ENV@@
# ---- end of values ----

APP=/opt/omega
export DEBIAN_FRONTEND=noninteractive HOME="${HOME:-/root}"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "==> omega bootstrap: $*"; }
die() { say "FAILED: $*"; exit 1; }
trap 'say "a command failed at line $LINENO"' ERR
# A host that cannot bootstrap never registers, so nothing would scale it in:
# it powers off after a while (and, launched with shutdown behaviour
# "terminate", is gone), leaving time to read its log or `shutdown -c`.
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  say "FAILED (exit $rc); this host will not register. It powers off in $FAIL_POWEROFF_MINUTES minutes (shutdown -c keeps it)"
  shutdown -h "+$FAIL_POWEROFF_MINUTES" 'omega bootstrap failed' || true
}
FAIL_POWEROFF_MINUTES=15
trap on_exit EXIT
fetch() { curl -fsSL --retry 5 --retry-delay 2 --retry-connrefused "$@"; }
# A URL without its user:password@, for log lines.
redact() { sed -E 's#//[^/@]*@#//***@#' <<<"$1"; }

PACKAGES=(ca-certificates curl gpgv xz-utils git make g++ python3 debootstrap docker.io iproute2)
missing=()
for pkg in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = 'install ok installed' ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "Debian packages: ${missing[*]}"
  # The first boot's own apt runs may hold the lock for a while.
  apt-get -o DPkg::Lock::Timeout=600 -q update
  apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${missing[@]}"
fi
# docker0 keeps one MAC address, after a reboot too: without it the bridge takes
# its lowest port's address, which changes as containers come and go, and
# packets in flight to the old one cost a TCP retransmit (200 ms; 3 s for a
# SYN). infra/scripts/pin-docker-bridge-mac.sh explains; 02:42:ac:11:00:01 is
# docker0's default 172.17.0.1 in Docker's own 02:42 scheme. dockerd has made
# docker0 by the time systemd counts it started (Type=notify).
install -d /etc/systemd/system/docker.service.d
cat >/etc/systemd/system/docker.service.d/omega-bridge-mac.conf <<'UNIT'
[Service]
ExecStartPost=ip link set dev docker0 address 02:42:ac:11:00:01
UNIT
systemctl daemon-reload
systemctl enable --now docker.service

# IMDSv2: a session token first (the instance allows no other way).
imds() {
  local token
  token="$(fetch -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)"
  fetch -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
}
INSTANCE_ID="$(imds meta-data/instance-id)"
PRIVATE_IP="$(imds meta-data/local-ipv4)"
[[ $INSTANCE_ID =~ ^i-[0-9a-f]{8,17}$ ]] || die "unexpected instance id from the metadata service"
[[ $PRIVATE_IP =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "unexpected private IP from the metadata service"
say "this is $INSTANCE_ID at $PRIVATE_IP"

node_wanted() {
  command -v node >/dev/null 2>&1 || return 1
  local have
  have="$(node --version)"
  if [[ $NODE_VERSION =~ ^[0-9]+$ ]]; then [[ $have == "v$NODE_VERSION."* ]]; else [ "$have" = "v$NODE_VERSION" ]; fi
}

install_node() {
  local arch dist work line sum file dir
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "no Node.js build for $(uname -m)" ;;
  esac
  if [[ $NODE_VERSION =~ ^[0-9]+$ ]]; then dist="https://nodejs.org/dist/latest-v$NODE_VERSION.x"; else dist="https://nodejs.org/dist/v$NODE_VERSION"; fi
  work="$(mktemp -d)"
  fetch -o "$work/SHASUMS256.txt" "$dist/SHASUMS256.txt"
  fetch -o "$work/SHASUMS256.txt.sig" "$dist/SHASUMS256.txt.sig"
  # The keys come from another site than the files, so nodejs.org alone cannot vouch for a build.
  fetch -o "$work/pubring.kbx" https://raw.githubusercontent.com/nodejs/release-keys/HEAD/gpg/pubring.kbx
  gpgv --keyring "$work/pubring.kbx" "$work/SHASUMS256.txt.sig" "$work/SHASUMS256.txt"
  line="$(grep -m 1 -E "  node-v[0-9]+\.[0-9]+\.[0-9]+-linux-$arch\.tar\.xz\$" "$work/SHASUMS256.txt" || true)"
  [ -n "$line" ] || die "$dist/SHASUMS256.txt lists no linux-$arch tarball"
  sum="${line%% *}"
  file="${line##* }"
  [ -z "$NODE_SHA256" ] || [ "$NODE_SHA256" = "$sum" ] || die "$file: its SHA-256 is not the pinned OMEGA_EC2_NODE_SHA256"
  fetch -o "$work/$file" "$dist/$file"
  echo "$sum  $work/$file" | sha256sum -c --quiet -
  dir="/usr/local/lib/nodejs/${file%.tar.xz}"
  rm -rf "$dir" && mkdir -p "$dir"
  tar -xJf "$work/$file" -C "$dir" --strip-components=1 --no-same-owner
  ln -sf "$dir/bin/node" "$dir/bin/npm" "$dir/bin/npx" /usr/local/bin/
  rm -rf "$work"
}
if node_wanted; then
  say "Node.js $(node --version) is here"
else
  say "Node.js $NODE_VERSION from nodejs.org"
  install_node
  say "Node.js $(node --version)"
fi

# The source Omega was built from, recorded when the build succeeds.
want="$OMEGA_SOURCE_KIND $(redact "$OMEGA_SOURCE") $OMEGA_REF $OMEGA_SHA256"
if [ -f "$APP/.omega-source" ] && [ "$(cat "$APP/.omega-source")" = "$want" ] && [ -f "$APP/dist/cli/cli.js" ]; then
  say "Omega is built in $APP from that source"
else
  rm -rf "$APP" && mkdir -p "$APP"
  case "$OMEGA_SOURCE_KIND" in
    git)
      say "Omega from git $(redact "$OMEGA_SOURCE") at $OMEGA_REF"
      git -C "$APP" init -q
      git -C "$APP" fetch -q --depth 1 "$OMEGA_SOURCE" "$OMEGA_REF"
      git -C "$APP" -c advice.detachedHead=false checkout -q FETCH_HEAD
      ;;
    tarball)
      say "Omega from $(redact "$OMEGA_SOURCE")"
      tgz="$(mktemp)"
      fetch -o "$tgz" "$OMEGA_SOURCE"
      [ -z "$OMEGA_SHA256" ] || echo "$OMEGA_SHA256  $tgz" | sha256sum -c --quiet -
      # A GitHub-style archive has one top directory; a tarball of the tree itself does not.
      tar -tzf "$tgz" >"$tgz.list"
      strip=1
      grep -qxE '(\./)?package\.json' "$tgz.list" && strip=0
      tar -xzf "$tgz" -C "$APP" --strip-components="$strip" --no-same-owner
      rm -f "$tgz" "$tgz.list"
      ;;
    *) die "no Omega source given (OMEGA_EC2_OMEGA_SOURCE)" ;;
  esac
  say "building Omega (npm ci, npm run build)"
  (cd "$APP" && npm ci --no-audit --no-fund && npm run build)
  echo "$want" >"$APP/.omega-source"
fi

say "sandbox images (make images; several minutes on a fresh host, seconds when they are built)"
make -C "$APP" images

say "omega-manager: /etc/omega/manager.env and the unit"
install -m 755 "$APP/infra/systemd/omega" /usr/local/bin/omega
install -d -m 755 /etc/omega
(
  umask 077
  {
    printf '%s\n' "$MANAGER_ENV"
    printf 'OMEGA_HOST_ID=%s\nOMEGA_HOST_IP=%s\nOMEGA_MANAGER_LISTEN=%s:%s\n' "$INSTANCE_ID" "$PRIVATE_IP" "$PRIVATE_IP" "$MANAGER_PORT"
  } >/etc/omega/manager.env.new
)
chown root:root /etc/omega/manager.env.new
chmod 600 /etc/omega/manager.env.new
mv -f /etc/omega/manager.env.new /etc/omega/manager.env
install -m 644 "$APP/infra/systemd/omega-manager.service" /etc/systemd/system/omega-manager.service
systemctl daemon-reload
systemctl enable omega-manager.service
systemctl restart omega-manager.service
# The unit restarts the manager until it can register (Redis may be a moment
# away), so a manager not up yet is reported, not a failed bootstrap.
sleep 5
if systemctl is-active --quiet omega-manager.service; then
  say "omega-manager runs as host $INSTANCE_ID; the master can allocate to it once it registers"
else
  say "omega-manager is not up yet (it restarts on failure); its log so far:"
  journalctl -u omega-manager.service -n 40 --no-pager || true
fi
