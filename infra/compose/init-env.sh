#!/usr/bin/env bash
# Write infra/compose/.env from env.example: random secrets (64 hex digits
# from /dev/urandom) and DOCKER_GID, the group of the Docker socket. Never
# overwrites an .env; the file is mode 600.
#   ./init-env.sh [NAME=value ...]    values to set besides, e.g. OMEGA_HOST_IP=192.168.1.20
set -euo pipefail
cd "$(dirname "$0")"
umask 077
[ -e .env ] && { echo ".env exists; edit it, or remove it to start again" >&2; exit 1; }
secret() { od -An -vtx1 -N32 /dev/urandom | tr -d ' \n'; }
# NAME=value on its line of .env.new, or appended.
set_var() {
  local line found=0
  while IFS= read -r line; do
    if [[ $line == "$1="* ]]; then printf '%s=%s\n' "$1" "$2"; found=1; else printf '%s\n' "$line"; fi
  done <.env.new >.env.tmp
  [ "$found" = 1 ] || printf '%s=%s\n' "$1" "$2" >>.env.tmp
  mv .env.tmp .env.new
}
trap 'rm -f .env.new .env.tmp' EXIT
socket=/var/run/docker.sock
for kv in "$@"; do
  [[ $kv =~ ^[A-Z_][A-Z0-9_]*=.*$ ]] || { echo "not NAME=value: $kv" >&2; exit 2; }
  [[ $kv == DOCKER_SOCKET=* ]] && socket="${kv#*=}"
done
[ -S "$socket" ] || { echo "$socket is not a socket: is the Docker engine running?" >&2; exit 1; }

cp env.example .env.new
for name in OMEGA_API_TOKEN OMEGA_DNS_TOKEN OMEGA_MANAGER_TOKEN OMEGA_REDIS_PASSWORD; do set_var "$name" "$(secret)"; done
set_var DOCKER_GID "$(stat -c %g "$socket")"
for kv in "$@"; do set_var "${kv%%=*}" "${kv#*=}"; done
mv .env.new .env
echo "wrote $PWD/.env (mode 600); the API token is its OMEGA_API_TOKEN line"
