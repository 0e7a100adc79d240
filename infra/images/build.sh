#!/usr/bin/env bash
# `make images`: every sandbox image, built locally (no registry needed).
#
#   omega/sandbox-rootfs:<hash>   debootstrap --variant=minbase bookworm, docker import
#   omega/sandbox-base:<hash>     + the host's node, the worker, user sandbox (1000)
#   omega/sandbox-<t>:<hash>      one per template (node, python), also tagged :latest
#
# Each tag's hash covers every input of the image and its parent's hash, so an
# image whose inputs did not change is skipped: a rebuild of nothing takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
IMAGES="$ROOT/infra/images"
SUITE=bookworm
MIRROR="${OMEGA_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
INCLUDE=bash,ca-certificates,git,tini,procps,less,curl,openssh-client,xz-utils
TEMPLATES=(node python)
STEP=0
STEPS=$((3 + ${#TEMPLATES[@]}))

step() { STEP=$((STEP + 1)); echo "==> [$STEP/$STEPS] $*"; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { sha256sum | cut -c1-16; }
# A directory's content, independent of timestamps and owners.
hash_dir() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -c . | hash_of; }
timed() { local t0=$SECONDS; "$@"; echo "    done in $((SECONDS - t0)) s" >&2; }
# docker build, quiet but for errors (the classic builder's deprecation notice is not one).
build() { docker build -q "$@" >/dev/null 2> >(grep -v -e DEPRECATED -e 'legacy builder' -e buildx -e '^ *$' >&2); }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "worker bundle"
if [ -f manager/worker/main.ts ]; then
  npm run --silent build:worker
  mkdir -p "$work/base/worker/node_modules/node-pty/build/Release"
  cp dist/worker/worker.mjs "$work/base/worker/"
  # node-pty at run time: its JS and the native module built for this Node.
  cp -r node_modules/node-pty/package.json node_modules/node-pty/lib "$work/base/worker/node_modules/node-pty/"
  cp node_modules/node-pty/build/Release/pty.node "$work/base/worker/node_modules/node-pty/build/Release/"
else
  echo "    manager/worker/ not present: using the placeholder worker"
  mkdir -p "$work/base/worker"
  cp "$IMAGES/placeholder/worker.mjs" "$work/base/worker/"
fi

step "Debian $SUITE rootfs (debootstrap minbase, from $MIRROR)"
rootfs_hash="$(printf '%s\n' "$SUITE" minbase "$MIRROR" "$INCLUDE" | hash_of)"
ROOTFS="omega/sandbox-rootfs:$rootfs_hash"
if has_image "$ROOTFS"; then
  echo "    $ROOTFS exists; skipped"
else
  "$ROOT/infra/scripts/ensure-apt.sh" debootstrap
  dir="$work/rootfs"
  # debootstrap prints a line per package it retrieves and unpacks: that is the progress.
  timed debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$MIRROR" \
    | sed -u -n 's/^I: \(Retrieving\|Validating\|Extracting\|Installing\|Configuring\) \(.*\)/    \1 \2/p' \
    | awk '{ n++; if (n % 20 == 0) print "    ... " n " steps, " $0; fflush() } END { print "    " n " steps" }'
  rm -rf "$dir/var/cache/apt/archives"/*.deb "$dir/var/lib/apt/lists"/*
  echo "    importing"
  tar -C "$dir" -c . | docker import - "$ROOTFS" >/dev/null
  rm -rf "$dir"
fi

step "omega/sandbox-base"
mkdir -p "$work/base"
cp "$(readlink -f "$(command -v node)")" "$work/base/node"
cp "$IMAGES/base/Dockerfile" "$work/base/Dockerfile"
base_hash="$( (echo "$rootfs_hash"; hash_dir "$work/base") | hash_of)"
BASE="omega/sandbox-base:$base_hash"
if has_image "$BASE"; then
  echo "    $BASE exists; skipped"
else
  timed build --build-arg ROOTFS="$ROOTFS" --label omega.hash="$base_hash" -t "$BASE" "$work/base"
fi

for t in "${TEMPLATES[@]}"; do
  step "omega/sandbox-$t"
  ctx="$work/$t"
  mkdir -p "$ctx"
  cp "$IMAGES/templates/$t/Dockerfile" "$ctx/"
  if [ "$t" = node ]; then
    cp -r "$(dirname "$(readlink -f "$(command -v node)")")/../lib/node_modules/npm" "$ctx/npm"
  fi
  h="$( (echo "$base_hash"; hash_dir "$ctx") | hash_of)"
  if has_image "omega/sandbox-$t:$h"; then
    echo "    omega/sandbox-$t:$h exists; skipped"
  else
    timed build --build-arg BASE="$BASE" --label omega.template="$t" --label omega.hash="$h" -t "omega/sandbox-$t:$h" "$ctx"
  fi
  docker tag "omega/sandbox-$t:$h" "omega/sandbox-$t:latest"
done
echo "==> images ready: $(for t in "${TEMPLATES[@]}"; do printf 'omega/sandbox-%s ' "$t"; done)"
