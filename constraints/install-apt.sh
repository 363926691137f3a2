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
# wait for another apt/dpkg run (e.g. a second checkout installing at the same time) instead of failing
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
