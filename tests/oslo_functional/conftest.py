"""Run oslo.messaging's own functional tests against ``dovecote.oslo``.

An import hook makes ``oslo_messaging`` (and every module path dovecote.oslo
has: ``oslo_messaging.rpc.client``, ``oslo_messaging.notify.notifier``, ...)
resolve to dovecote.oslo, while the modules it lacks (``oslo_messaging.tests``,
``oslo_messaging._drivers.*``, ``oslo_messaging._utils``, ...) load from the
installed oslo.messaging, unchanged. One exception: the package
``oslo_messaging.tests`` is created without running its ``__init__``, which
monkey-patches the process with eventlet; dovecote runs on real threads (the
threading executor is what oslo.messaging itself moves to).

This folder runs in a process of its own (``tests/interop/
test_oslo_functional_suite.py`` starts it): the hook would hide the real
oslo.messaging from every other test in the process.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pkgutil
import sys
import types
from collections.abc import Sequence
from pathlib import Path

_NAME = "oslo_messaging"


def _real_location() -> Path:
    spec = importlib.util.find_spec(_NAME)
    if spec is None or not spec.submodule_search_locations:
        msg = "the real oslo.messaging is not installed: pip install -e '.[test]'"
        raise RuntimeError(msg)
    return Path(next(iter(spec.submodule_search_locations)))


class _OslosOwn(importlib.abc.MetaPathFinder):
    """Finds what dovecote.oslo does not have in the installed oslo.messaging."""

    def __init__(self, real: Path) -> None:
        self.real = real

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_NAME + ".") or fullname in sys.modules:
            return None
        parts = fullname.split(".")[1:]
        folder = self.real.joinpath(*parts[:-1])
        return importlib.machinery.PathFinder.find_spec(fullname, [str(folder)])


def _install() -> None:
    if sys.modules.get(_NAME) is not None and not sys.modules[_NAME].__name__.startswith(
            "dovecote"):
        msg = "the real oslo_messaging was imported before the hook: run this folder alone"
        raise RuntimeError(msg)
    real = _real_location()
    face = importlib.import_module("dovecote.oslo")
    sys.modules[_NAME] = face
    for info in pkgutil.walk_packages(face.__path__, "dovecote.oslo."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        sys.modules[_NAME + info.name[len("dovecote.oslo"):]] = module
    tests = types.ModuleType(f"{_NAME}.tests")
    tests.__path__ = [str(real / "tests")]
    sys.modules[tests.__name__] = tests
    sys.meta_path.insert(0, _OslosOwn(real))
    # ``from oslo_messaging import _utils`` looks the name up on the module
    # (dovecote.oslo): import oslo's private modules under oslo's names first.
    for path in sorted(real.glob("_*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"{_NAME}.{path.stem}")


_install()
