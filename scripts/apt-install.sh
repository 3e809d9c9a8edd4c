#!/usr/bin/env bash
# Install the Debian packages named on the command line that are missing, running
# `apt-get update` at most once per boot of the machine (a stamp in /run, or /tmp),
# however many of the scripts that start test services need a package.
#   bash scripts/apt-install.sh rabbitmq-server redis-server
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

STAMP_DIR=/run
[ -w "$STAMP_DIR" ] || STAMP_DIR=/tmp
STAMP="$STAMP_DIR/dovecote-apt-updated"
export DEBIAN_FRONTEND=noninteractive
if [ ! -e "$STAMP" ]; then
  echo "apt-install: apt-get update"
  apt-get update -qq
  touch "$STAMP"
fi
echo "apt-install: installing ${missing[*]}"
apt-get install -y -qq "${missing[@]}" >/dev/null
