"""The optional extras install cleanly into a fresh virtual environment, and
without them the modules that need them say which extra to install;
``dovecote[testing]`` brings pytest (and what pytest needs) and nothing else,
and pytest then loads dovecote's plugin.

The package is built from a copy of the tracked files (a build leaves nothing
in the checkout) into a venv without the system's site-packages, the way a
user on a fresh machine gets it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from conftest import ROOT

WITHOUT_EXTRAS = textwrap.dedent("""
    import dovecote, dovecote.testing
    for module, extra in (("dovecote.metrics", "metrics"), ("dovecote.tracing", "otel")):
        try:
            __import__(module)
        except ImportError as exc:
            assert f"dovecote[{extra}]" in str(exc), exc
            print(module, "refused")
        else:
            raise AssertionError(f"{module} imported without its extra")
""")

WITH_EXTRAS = textwrap.dedent("""
    import prometheus_client, dovecote, dovecote.metrics, dovecote.tracing
    registry = prometheus_client.CollectorRegistry()
    dovecote.metrics.enable(registry=registry)
    dovecote.tracing.enable()  # no tracer provider configured: nothing happens
    transport = dovecote.get_transport("memory://extras")

    class Endpoint:
        def echo(self, ctxt, value):
            return value

    server = dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="s"),
                                     [Endpoint()])
    server.start()
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="t"), timeout=5)
    assert client.call({}, "echo", value=3) == 3
    server.stop()
    server.wait(timeout=5)
    value = registry.get_sample_value("dovecote_messages_handled_total", {
        "server": "s", "kind": "rpc", "method": "echo", "outcome": "ok"})
    assert value == 1.0, value
    print("metrics ok")
""")


#: With ``dovecote[testing]``: the plugin loads by its entry point, and what the
#: extra added is pytest and the packages pytest requires, nothing else.
WITH_TESTING = textwrap.dedent("""
    import importlib.metadata as md, json, sys
    from packaging.requirements import Requirement
    import _pytest.config
    config = _pytest.config.get_config()
    config.pluginmanager.load_setuptools_entrypoints("pytest11")
    plugin = config.pluginmanager.get_plugin("dovecote")
    assert plugin is not None and plugin.__name__ == "dovecote.testing._plugin", plugin
    before = set(json.loads(sys.argv[1]))
    added = {d.metadata["Name"].lower().replace("_", "-") for d in md.distributions()} - before
    needed, todo = set(), ["pytest"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for text in md.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    assert added and added <= needed, (sorted(added), sorted(needed))
    print("plugin ok")
""")

#: The installed distributions' names, as JSON (before an extra is installed).
LISTED = ("import importlib.metadata as md, json; print(json.dumps(sorted("
          "d.metadata['Name'].lower().replace('_', '-') for d in md.distributions())))")


def _copy_tracked(dest: Path) -> None:
    """The files git tracks (and the uncommitted ones beside them), not build output."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=30)
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _run(python: Path, *args: str, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env, cwd="/")
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dovecote built once, from a copy of the tracked files, for every venv here."""
    source = tmp_path_factory.mktemp("src")
    _copy_tracked(source)
    out = tmp_path_factory.mktemp("wheel")
    _run(Path(sys.executable), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
         str(source))
    [built] = out.glob("dovecote-*.whl")
    return built


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A venv without the system's packages, with dovecote (no extra) installed."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    if not python.exists():  # pragma: no cover - only on a platform without bin/
        pytest.fail(f"no interpreter in the new venv at {python}")
    _run(python, "-m", "pip", "install", "-q", str(wheel))
    out = _run(python, "-c", WITHOUT_EXTRAS)
    assert out.split("\n")[:2] == ["dovecote.metrics refused", "dovecote.tracing refused"]
    return python


def test_extras_install_cleanly_into_a_fresh_venv(tmp_path: Path, wheel: Path) -> None:
    python = _fresh_venv(tmp_path, wheel)
    _run(python, "-m", "pip", "install", "-q", f"{wheel}[metrics,otel]")
    assert _run(python, "-c", WITH_EXTRAS).strip() == "metrics ok"
    shown = _run(python, "-m", "pip", "show", "prometheus_client", "opentelemetry-api")
    assert "Name: prometheus_client" in shown
    assert "Name: opentelemetry-api" in shown
    assert sys.version_info >= (3, 11)


def test_the_testing_extra_brings_pytest_and_the_plugin(tmp_path: Path, wheel: Path) -> None:
    python = _fresh_venv(tmp_path, wheel)
    before = _run(python, "-c", LISTED).strip()
    assert '"pytest"' not in before
    _run(python, "-m", "pip", "install", "-q", f"{wheel}[testing]")
    assert _run(python, "-c", WITH_TESTING, before).strip() == "plugin ok"
    shown = _run(python, "-m", "pytest", "--help")
    assert "--dovecote-url=URL" in shown
    assert "DOVECOTE_TEST_URL" in shown
