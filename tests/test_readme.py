"""README.md stays short and true: at most 200 lines; its quickstart is a byte for
byte copy of ``examples/quickstart.py`` (written by ``scripts/sync_readme.py``); its
set-up commands are the ones CI runs; its relative links lead to files that exist.
CONTRIBUTING.md's links are checked the same way."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import sync_readme  # scripts/ is not a package: found through the path above

README = ROOT / "README.md"
MAX_LINES = 200
QUICKSTART = ROOT / "examples" / "quickstart.py"
QUICKSTART_COMMAND = "python -m pip install . && python examples/quickstart.py"

FENCED = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\[[^\]\n]*\]\((?P<target>[^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(text: str, heading_start: str) -> str:
    """The text of the ``##`` section whose heading starts with ``heading_start``."""
    found = re.search(rf"^## {re.escape(heading_start)}.*?$(?P<body>.*?)(?=^## |\Z)", text,
                      re.DOTALL | re.MULTILINE)
    assert found is not None, f"README.md has no '## {heading_start}...' section"
    return found["body"]


def sh_blocks(text: str) -> list[str]:
    return [m["body"].strip() for m in FENCED.finditer(text) if m["lang"].strip() == "sh"]


def ci_command() -> str:
    """The last command line of ``.ci/run`` (comments and blank lines skipped)."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")][-1]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub (and MyST's heading anchors) make it."""
    text = INLINE_CODE.sub(lambda m: m[0].strip("`"), heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCED.sub("", path.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_readme_is_at_most_200_lines() -> None:
    count = len(readme().splitlines())
    assert count <= MAX_LINES, (
        f"README.md has {count} lines, more than {MAX_LINES}: move the detail into docs/")


def test_quickstart_block_is_the_example_byte_for_byte() -> None:
    found = sync_readme.BLOCK.search(readme())
    assert found is not None, "README.md lost its <!-- quickstart: ... --> block"
    assert found["path"] == "examples/quickstart.py"
    assert found["body"] == sync_readme.fenced(QUICKSTART.read_text(encoding="utf-8")), (
        "README.md's quickstart differs from examples/quickstart.py: "
        "run `python scripts/sync_readme.py`")


def test_sync_script_writes_the_block() -> None:
    """``scripts/sync_readme.py`` turns a stale block into the exact copy, and
    leaves the rest of the README as it was."""
    text = readme()
    found = sync_readme.BLOCK.search(text)
    assert found is not None
    stale = text[:found.start("body")] + "```python\nold\n```\n" + text[found.end("body"):]
    assert sync_readme.synced(stale) == text[:found.start("body")] + (
        "```python\n" + QUICKSTART.read_text(encoding="utf-8") + "```\n"
    ) + text[found.end("body"):]


def test_setup_command_is_the_first_sh_block_of_setup() -> None:
    blocks = sh_blocks(section(readme(), "Set-up"))
    assert blocks, "README.md's set-up section has no ```sh block"
    assert blocks[0] == QUICKSTART_COMMAND


def test_test_command_is_what_ci_runs() -> None:
    blocks = [b for b in sh_blocks(section(readme(), "Set-up")) if "scripts/test.sh" in b]
    assert len(blocks) == 1, "README.md's set-up section needs one ```sh block running the tests"
    assert blocks[0] == ci_command(), (
        f"README.md's test command {blocks[0]!r} is not .ci/run's {ci_command()!r}")


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_lead_to_files(document: str) -> None:
    path = ROOT / document
    text = INLINE_CODE.sub("", FENCED.sub("", path.read_text(encoding="utf-8")))
    broken = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{document} has broken links:\n" + "\n".join(broken)


#: The README's performance rows and the ``report.json`` rows they show.
PERFORMANCE_ROWS = {
    "a fresh server process draining a backlog of casts": ("drain_rpc", "rate"),
    "a fresh listener process draining notifications": ("drain_notify", "rate"),
    "casts end to end, 8 client threads": ("casts_8", "rate"),
    "casts end to end, 1 client thread": ("casts_1", "rate"),
    "calls from 8 threads": ("calls_8", "rate"),
    "call round trip, median": ("call_rtt", "rtt_ms"),
}
PERFORMANCE_COLUMNS = ("dovecote", "oslo", "raw")


def test_performance_table_is_the_report_of_record() -> None:
    """The README's as-deployed numbers are those ``benchmarks/report.py`` wrote
    to ``benchmarks/results/report.json`` (rounded as shown), row by row."""
    record = json.loads((ROOT / "benchmarks" / "results" / "report.json").read_text())
    deployed = record["deployed"]
    rows = [line for line in section(readme(), "Performance").splitlines()
            if line.startswith("| ") and not line.startswith("| as deployed")
            and "---" not in line]
    shown = {cells[0]: cells[1:] for cells in
             ([c.strip() for c in row.strip("|").split("|")] for row in rows)}
    assert set(shown) == set(PERFORMANCE_ROWS), (
        f"README.md's performance rows {sorted(shown)} are not {sorted(PERFORMANCE_ROWS)}")
    for label, (row, field) in PERFORMANCE_ROWS.items():
        for column, cell in zip(PERFORMANCE_COLUMNS, shown[label][:3], strict=True):
            number = re.match(r"[\d,.]+", cell)
            if number is None:
                assert row not in deployed.get(column, {}), f"{label}: {column} left out"
                continue
            value = float(number[0].replace(",", ""))
            expected = deployed[column][row][field]
            places = 2 if field == "rtt_ms" else 0
            assert value == round(expected, places), (
                f"README.md's {label!r} shows {cell!r} for {column}; report.json has {expected}")
