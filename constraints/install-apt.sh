#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are missing (root only; otherwise say what to do).
set -euo pipefail
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$1" || true)
[ ${#pkgs[@]} -eq 0 ] && exit 0
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bitswarm: optional system packages missing: ${missing[*]} (sudo apt-get install ${missing[*]}); continuing" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
