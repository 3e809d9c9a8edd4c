"""The package's shape, as ``scripts/test.sh`` enforces it: no import cycle
(type-checking and function-level imports included, ``lib/`` and ``actors/``
read as the one installed package) and every import pointing down the layers
``scripts/check_imports.py`` names. The checker itself is tested on small trees
with a known fault, so a checker that can no longer fail is caught too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

CHECK = ROOT / "scripts" / "check_imports.py"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_package_has_no_cycle_and_its_imports_point_down() -> None:
    result = check()
    assert result.returncode == 0, result.stderr
    assert "no cycle" in result.stdout


def test_every_public_path_still_imports() -> None:
    import dovecote
    import dovecote.metrics
    import dovecote.observe.metrics
    import dovecote.observe.tracing
    import dovecote.testing
    import dovecote.tracing

    assert dovecote.metrics is dovecote.observe.metrics
    assert dovecote.tracing is dovecote.observe.tracing
    for name in dovecote.__all__:
        assert getattr(dovecote, name) is not None, name
    for name in dovecote.testing.__all__:
        assert getattr(dovecote.testing, name) is not None, name


@pytest.mark.parametrize("where", ["module level", "TYPE_CHECKING", "in a function"])
def test_a_cycle_is_found_wherever_its_import_sits(tmp_path: Path, where: str) -> None:
    back = {
        "module level": "from ._url import x\n",
        "TYPE_CHECKING": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from ._url import x\n",
        "in a function": "def f():\n    from ._url import x\n",
    }[where]
    root = tree(tmp_path, {
        "lib/__init__.py": "",
        "lib/_url.py": "from ._wire import y\nx = 1\n",
        "lib/_wire.py": back + "y = 2\n",
        "actors/__init__.py": "",
    })
    result = check("--root", str(root))
    assert result.returncode == 1
    assert "import cycle: dovecote._url -> dovecote._wire" in result.stderr


def test_a_cycle_across_lib_and_actors_is_found(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "lib/__init__.py": "",
        "lib/rpc/__init__.py": "from dovecote.actors import a\n",
        "actors/__init__.py": "",
        "actors/a.py": "from dovecote.rpc import b\n",
    })
    result = check("--root", str(root))
    assert result.returncode == 1
    assert "import cycle: dovecote.actors.a -> dovecote.rpc" in result.stderr
    assert "import against the layers: dovecote.actors.a -> dovecote.rpc" in result.stderr


def test_an_import_up_the_layers_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "lib/__init__.py": "",
        "lib/_errors.py": "from .observe import log\n",
        "lib/observe/__init__.py": "",
        "lib/observe/log.py": "",
        "actors/__init__.py": "",
    })
    result = check("--root", str(root))
    assert result.returncode == 1
    assert "import against the layers: dovecote._errors -> dovecote.observe.log" in result.stderr


def test_a_module_without_a_layer_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"lib/__init__.py": "", "lib/_new.py": "", "actors/__init__.py": ""})
    result = check("--root", str(root))
    assert result.returncode == 1
    assert "no layer for dovecote._new" in result.stderr


def test_a_tree_without_the_package_is_refused(tmp_path: Path) -> None:
    result = check("--root", str(tmp_path))
    assert result.returncode == 1
    assert "no module found" in result.stderr
