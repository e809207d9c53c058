#!/usr/bin/env bash
# Installs the Debian packages psrec needs that are not installed yet (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for pkg in $(cat .ci/packages); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
