#!/usr/bin/env bash
# `make images`: every sandbox image, built locally from the Debian mirror the
# machine's apt uses (no registry is needed, none is contacted).
#
#   omega/sandbox-rootfs:<hash>   debootstrap --variant=minbase bookworm, docker import
#   omega/sandbox-os:<hash>       + OS packages, the host's node, user sandbox (1000)
#   omega/sandbox-base:<hash>     + the worker (the contract's base image)
#   omega/sandbox-<t>:<hash>      os + the template's tools + the worker; also :latest
#
# A tag's hash covers every input of its image (Dockerfile, each file copied in,
# the recipe, the parent's hash), so an image whose inputs did not change is
# skipped, and a rebuild of nothing takes seconds. The worker is each image's
# last layer, so a worker change does not reinstall the templates' packages.
#
#   build.sh            build what is missing
#   build.sh --refresh  debootstrap and build everything again, without Docker's
#                       cache (to pick up Debian updates; the hashes do not see them)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
IMAGES="$ROOT/infra/images"
SUITE=bookworm
TEMPLATES=(node python e2b)
REFRESH=0
case "${1:-}" in
  "") ;;
  --refresh) REFRESH=1 ;;
  *) echo "usage: $0 [--refresh]" >&2; exit 2 ;;
esac

# One build at a time (make images from two shells, tests running it).
exec 9>"${TMPDIR:-/tmp}/omega-images.lock"
flock -n 9 || { echo "==> another build of the images is running; waiting for it"; flock 9; }

# debootstrap, and reading and removing the rootfs it makes, need root.
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
STEP=0
STEPS=$((4 + ${#TEMPLATES[@]}))
BUILT=0
step() { STEP=$((STEP + 1)); echo "==> [$STEP/$STEPS] $*"; }
has_image() { [ "$REFRESH" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { sha256sum | cut -c1-16; }
# A directory's content, independent of timestamps and owners.
hash_dir() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -c . | hash_of; }
took() { echo "    done in $((SECONDS - $1)) s"; }

# The host apt's mirror for a suite: deb822 (*.sources) and one-line (*.list) formats.
host_mirror() {
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; ok = 0; deb = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); uri = u[1] }
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, " "); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
          if ($i ~ /^Types:/ && $i !~ /[ \t]deb([ \t]|$)/) deb = 0
          if ($i ~ /^Enabled: *no/) deb = 0
        }
        if (ok && deb && uri != "") { print uri; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
  done
}

# debootstrap prints a line per package retrieved, validated, extracted...:
# show each phase, and a count every 25 packages, rather than a silent minute.
make_rootfs() {
  local dir="$1" log
  "$ROOT/infra/scripts/ensure-apt.sh" debootstrap
  $SUDO debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" |
    awk '/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [a-z0-9]/ {
           n++; if (n % 25 == 0) printf "    ... %d package steps (%s)\n", n, $0; fflush(); next }
         { print "    " $0; fflush() }' || {
    log="$dir/debootstrap/debootstrap.log"
    echo "debootstrap failed; the end of $log:" >&2
    $SUDO tail -n 20 "$log" >&2 || true
    return 1
  }
  # The engine provides these per container; the package caches are not needed.
  $SUDO rm -rf "$dir/etc/resolv.conf" "$dir/etc/hostname" "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*
}

# docker build showing its steps; the whole output when it fails.
build() {
  local log="$work/build.log"
  if ! docker build ${NO_CACHE:+--no-cache} "$@" >"$log" 2>&1; then
    echo "docker build $* failed:" >&2
    grep -v -e DEPRECATED -e 'legacy builder' -e buildx "$log" | tail -n 40 >&2
    return 1
  fi
  sed -n 's/^\(Step [0-9]*\/[0-9]* : .\{0,90\}\).*/    \1/p' "$log"
}
NO_CACHE=""
[ "$REFRESH" = 1 ] && NO_CACHE=1

# Tags of repo other than keep and latest: superseded builds. An image still
# used by a container stays (docker rmi without -f refuses).
prune() {
  local repo="$1" keep="$2" tag
  for tag in $(docker image ls "$repo" --format '{{.Tag}}'); do
    [ "$tag" = "$keep" ] || [ "$tag" = latest ] || docker rmi "$repo:$tag" >/dev/null 2>&1 || true
  done
}

work="$(mktemp -d)"
trap '$SUDO rm -rf "$work"' EXIT
t_all=$SECONDS

# --refresh moves every tag to a new image: remember the old ones to remove them
# at the end (only those left without a tag, and not in use).
replaced=()
if [ "$REFRESH" = 1 ]; then
  mapfile -t replaced < <(docker image ls --filter 'reference=omega/sandbox-*' --format '{{.ID}}' | sort -u)
fi

step "worker bundle"
t0=$SECONDS
mkdir -p "$work/base/worker"
cp "$IMAGES/base/Dockerfile" "$work/base/"
npm run --silent build:worker -- --log-level=warning
cp dist/worker/worker.mjs "$work/base/worker/"
# node-pty at run time: its JS and the native module built for this Node.
pty=node_modules/node-pty
[ -f "$pty/build/Release/pty.node" ] || { echo "$pty/build/Release/pty.node is missing (run npm ci)" >&2; exit 1; }
mkdir -p "$work/base/worker/$pty/build/Release"
cp -r "$pty/package.json" "$pty/lib" "$work/base/worker/$pty/"
cp "$pty/build/Release/pty.node" "$work/base/worker/$pty/build/Release/"
echo "    dist/worker/worker.mjs ($(du -k dist/worker/worker.mjs | cut -f1) KiB) and node-pty"
took "$t0"

MIRROR="${OMEGA_DEBIAN_MIRROR:-$(host_mirror "$SUITE" | head -n 1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
step "omega/sandbox-rootfs: debootstrap --variant=minbase $SUITE $MIRROR"
# The recipe is part of the hash: a change to make_rootfs makes a new rootfs.
rootfs_hash="$( (printf '%s\n' "$SUITE" "$MIRROR"; declare -f make_rootfs) | hash_of)"
ROOTFS="omega/sandbox-rootfs:$rootfs_hash"
if has_image "$ROOTFS"; then
  echo "    $ROOTFS exists; skipped"
else
  t0=$SECONDS
  make_rootfs "$work/rootfs"
  echo "    importing ($($SUDO du -sm "$work/rootfs" | cut -f1) MiB)"
  $SUDO tar -C "$work/rootfs" --numeric-owner -c . | docker import --message "debootstrap $SUITE $MIRROR" - "$ROOTFS" >/dev/null
  $SUDO rm -rf "$work/rootfs"
  BUILT=1
  took "$t0"
fi

step "omega/sandbox-os: packages, node $(node --version), user sandbox"
mkdir -p "$work/os"
cp "$IMAGES/os/Dockerfile" "$work/os/"
cp "$(readlink -f "$(command -v node)")" "$work/os/node"
# The image's apt sources: the host's mirror for each suite it uses.
{
  printf 'Types: deb\nURIs: %s\nSuites: %s' "$MIRROR" "$SUITE"
  updates="$(host_mirror "$SUITE-updates" | head -n 1)"
  [ "$updates" = "$MIRROR" ] && printf ' %s' "$SUITE-updates"
  printf '\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  security="$(host_mirror "$SUITE-security" | head -n 1)"
  [ -n "$security" ] && printf '\nTypes: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$security" "$SUITE-security"
} >"$work/os/debian.sources"
os_hash="$( (echo "$rootfs_hash"; hash_dir "$work/os") | hash_of)"
OS="omega/sandbox-os:$os_hash"
if has_image "$OS"; then
  echo "    $OS exists; skipped"
else
  t0=$SECONDS
  build --build-arg ROOTFS="$ROOTFS" --label omega.hash="$os_hash" -t "$OS" "$work/os"
  BUILT=1
  took "$t0"
fi

step "omega/sandbox-base: os + worker"
base_hash="$( (echo "$os_hash"; hash_dir "$work/base") | hash_of)"
BASE="omega/sandbox-base:$base_hash"
if has_image "$BASE"; then
  echo "    $BASE exists; skipped"
else
  t0=$SECONDS
  build --build-arg OS="$OS" --label omega.hash="$base_hash" -t "$BASE" "$work/base"
  BUILT=1
  took "$t0"
fi
docker tag "$BASE" omega/sandbox-base:latest

npm_dir="$(dirname "$(readlink -f "$(command -v node)")")/../lib/node_modules/npm"
for t in "${TEMPLATES[@]}"; do
  step "omega/sandbox-$t: os + the template's tools + worker"
  ctx="$work/$t"
  mkdir -p "$ctx"
  cp -r "$IMAGES/templates/$t/." "$ctx/"
  [ "$t" = node ] && cp -r "$npm_dir" "$ctx/npm"
  h="$( (echo "$os_hash $base_hash"; hash_dir "$ctx") | hash_of)"
  if has_image "omega/sandbox-$t:$h"; then
    echo "    omega/sandbox-$t:$h exists; skipped"
  else
    t0=$SECONDS
    build --build-arg OS="$OS" --build-arg BASE="$BASE" \
      --label omega.template="$t" --label omega.hash="$h" -t "omega/sandbox-$t:$h" "$ctx"
    BUILT=1
    took "$t0"
  fi
  docker tag "omega/sandbox-$t:$h" "omega/sandbox-$t:latest"
  prune "omega/sandbox-$t" "$h"
done
prune omega/sandbox-base "$base_hash"
prune omega/sandbox-os "$os_hash"
prune omega/sandbox-rootfs "$rootfs_hash"
for id in "${replaced[@]}"; do
  [ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ] && { docker rmi "$id" >/dev/null 2>&1 || true; }
done

if [ "$BUILT" = 0 ]; then
  echo "==> images up to date, nothing to build ($((SECONDS - t_all)) s)"
else
  echo "==> images ready in $((SECONDS - t_all)) s:"
  docker image ls --filter 'reference=omega/sandbox-*:latest' --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | sed 's/^/    /'
fi
