#!/usr/bin/env bash
# mypy --strict over the package as it installs: lib/ is `dovecote`, actors/ is
# `dovecote.actors`. mypy cannot follow setuptools' package-dir mapping, so this
# lays the package out under build/typecheck with symlinks and checks it there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=build/typecheck
rm -rf "$root"
mkdir -p "$root/dovecote"
for f in lib/*.py lib/py.typed; do ln -s "$PWD/$f" "$root/dovecote/"; done
for d in lib/*/; do ln -s "$PWD/${d%/}" "$root/dovecote/$(basename "$d")"; done
ln -s "$PWD/actors" "$root/dovecote/actors"
cd "$root"
exec mypy --config-file ../../pyproject.toml -p dovecote
