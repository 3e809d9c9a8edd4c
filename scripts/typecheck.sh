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
mypy --config-file ../../pyproject.toml -p dovecote
# The docs' Sphinx extensions (top-level modules Sphinx imports from docs/_ext),
# checked beside the laid-out package they document.
for f in ../../docs/_ext/*.py; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" .; done
exec mypy --config-file ../../pyproject.toml ./*.py
