"""The documentation builds with warnings and dangling references as errors,
every snippet it runs passes, and its generated tables agree with the code.

The builds run as the docs' own commands do (``python -m sphinx -W -n ...``), in
subprocesses, into a temporary directory; nothing needs the network. Both run in
one xdist worker, one after the other (group ``docs``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXTENSIONS = DOCS / "_ext"
#: The doctest builder must run at least this many tests (a page whose
#: snippets stopped being collected would otherwise pass silently).
MIN_DOCTESTS = 100
#: Each build takes about 20 s here; the bound leaves room for a slow machine.
BUILD_TIMEOUT = 300


def _sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", builder, str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT,
    )


def _tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    text = (result.stdout + "\n" + result.stderr).strip().splitlines()
    return "\n".join(text[-lines:])


def _extension(name: str) -> object:
    if str(EXTENSIONS) not in sys.path:
        sys.path.insert(0, str(EXTENSIONS))
    return __import__(name)


@pytest.mark.xdist_group("docs")
@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_the_html_build_has_no_warning(tmp_path: Path) -> None:
    result = _sphinx("html", tmp_path / "html")
    assert result.returncode == 0, f"sphinx -b html failed:\n{_tail(result)}"


@pytest.mark.xdist_group("docs")
@pytest.mark.timeout(BUILD_TIMEOUT + 60)
def test_every_doctest_passes(tmp_path: Path) -> None:
    out = tmp_path / "doctest"
    result = _sphinx("doctest", out)
    assert result.returncode == 0, f"sphinx -b doctest failed:\n{_tail(result)}"
    report = (out / "output.txt").read_text(encoding="utf-8")
    summary = report.rpartition("Doctest summary")[2]
    ran = re.search(r"^\s*(\d+) tests?$", summary, re.MULTILINE)
    failed = re.search(r"^\s*(\d+) failures? in tests$", summary, re.MULTILINE)
    assert ran is not None, f"no doctest summary in:\n{report[-2000:]}"
    assert failed is not None, f"no doctest summary in:\n{report[-2000:]}"
    assert int(failed.group(1)) == 0, report[-4000:]
    assert int(ran.group(1)) >= MIN_DOCTESTS, (
        f"the doctest builder ran {ran.group(1)} tests, expected at least {MIN_DOCTESTS}")


def test_the_options_table_matches_the_code() -> None:
    """docs/_ext/options.toml describes exactly the options the drivers read,
    with defaults where (and only where) the code has none."""
    options = _extension("dovecote_options")
    problems = options.problems()  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)


def test_the_options_check_finds_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way the data file and the code can part is reported."""
    options = _extension("dovecote_options")
    data = dict(options._data())  # type: ignore[attr-defined]
    data.pop("prefetch")
    data["prefetchx"] = {"meaning": "a typo"}
    data["connect_timeout"] = {**data["connect_timeout"], "default": "5"}
    data["max_retries"] = {"meaning": data["max_retries"]["meaning"]}
    monkeypatch.setattr(options, "_data", lambda: data)
    problems = "\n".join(options.problems())  # type: ignore[attr-defined]
    assert "option prefetch is read by the code but not described (amqp1)" in problems
    assert "option prefetchx is described but no driver reads it" in problems
    assert "option connect_timeout's default comes from the code" in problems
    assert "option max_retries has no default in the code (rabbit)" in problems


def test_the_options_table_covers_every_driver() -> None:
    """Each built-in driver's options are in the table, and the table says so."""
    options = _extension("dovecote_options")
    rows = options.code_options()  # type: ignore[attr-defined]
    labels = set(options.drivers())  # type: ignore[attr-defined]
    assert labels == {"memory", "rabbit", "amqp1"}
    assert set(rows["control_exchange"].defaults) == labels
    assert rows["prefetch_count"].defaults == {"rabbit": 100}
    assert rows["prefetch"].defaults == {"amqp1": 10}
    assert rows["ssl_version"].defaults["amqp1"].name == "TLSv1_2"


def test_the_cli_reference_covers_every_subcommand() -> None:
    """The generated command reference has a section per subcommand, and
    every option of each."""
    cli = _extension("dovecote_cli")
    text = "\n".join(cli.markdown())  # type: ignore[attr-defined]
    _, subcommands = cli.parsers()  # type: ignore[attr-defined]
    assert {"call", "serve", "dead-letters"} <= set(subcommands)
    for name, parser in subcommands.items():
        assert f"## dovecote {name}\n" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in {"-h", "--help"}:
                    assert f"`{flag}`" in text, (name, flag)


# -- every page's code, as a reader copies it -------------------------------------------
_FENCE = re.compile(r"^```\{(testcode|testoutput)\}[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGES_WITH_CODE = sorted(
    str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")
    if "_build" not in page.parts and "{testcode}" in page.read_text(encoding="utf-8"))


def _reader_copy(page: Path) -> tuple[str, str]:
    """The page's shown code blocks in order (not its hidden set-up and clean-up),
    as one script, and the output its ``testoutput`` blocks promise."""
    code, output = [], []
    for kind, body in _FENCE.findall(page.read_text(encoding="utf-8")):
        lines = body.splitlines(keepends=True)
        while lines and lines[0].startswith(":"):  # directive options (:options:, :hide:)
            lines.pop(0)
        (code if kind == "testcode" else output).append("".join(lines))
    return "\n".join(code), "".join(output)


def test_pages_with_code_are_found() -> None:
    assert len(PAGES_WITH_CODE) >= 10, PAGES_WITH_CODE


@pytest.mark.parametrize("name", PAGES_WITH_CODE)
def test_a_pages_code_copied_into_a_fresh_file_runs_and_prints_what_the_page_shows(
    name: str, tmp_path: Path,
) -> None:
    """What a reader does: copy the page's code into a file, run it, compare."""
    import doctest

    script, promised = _reader_copy(DOCS / name)
    path = tmp_path / "reader.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{name} as a script failed:\n{done.stderr[-3000:]}"
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert checker.check_output(promised, done.stdout, flags), (
        f"{name} as a script printed:\n{done.stdout}\nthe page shows:\n{promised}")
