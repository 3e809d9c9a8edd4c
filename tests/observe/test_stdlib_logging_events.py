"""The README's table of events is checked against the code: every event name
dovecote logs (found by reading ``lib/`` and ``actors/`` with :mod:`ast`: the
log calls whose first argument is a literal event name) is in the table, the
table names no event the code does not log, and each row's level column covers
the levels the code logs its events at."""

from __future__ import annotations

import ast
import collections
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What dovecote's loggers and ActorLog offer, and the level each logs at.
METHODS = {"debug": "debug", "debug_fields": "debug", "debug_values": "debug",
           "record_values": "debug", "info": "info", "warning": "warning", "error": "error",
           "critical": "critical"}
EVENT = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
LEVELS = ("debug", "info", "warning", "error", "critical")


def code_events(*roots: Path) -> tuple[dict[str, set[str]], list[str]]:
    """``{event: {levels}}`` of every log call under ``roots``, and the places
    where an event name is built at run time (an f-string: not checkable)."""
    events: dict[str, set[str]] = collections.defaultdict(set)
    built: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in METHODS and node.args):
                    continue
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if EVENT.fullmatch(first.value):
                        events[first.value].add(METHODS[node.func.attr])
                elif isinstance(first, ast.JoinedStr):
                    head = first.values[0] if first.values else None
                    if (isinstance(head, ast.Constant) and isinstance(head.value, str)
                            and re.match(r"[a-z_]+\.", head.value)):
                        built.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return dict(events), built


def table_rows(readme: str) -> list[tuple[set[str], set[str]]]:
    """The rows of the README's "### Events" table: (event names, levels)."""
    section = readme.split("\n### Events\n", 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in {"event", "---"}:
            continue
        names = {name for name in re.findall(r"`([^`]+)`", cells[0]) if EVENT.fullmatch(name)}
        rows.append((names, set(re.findall(r"[a-z]+", cells[1])) & set(LEVELS)))
    return rows


def mismatches(readme: str) -> list[str]:
    """What is wrong between the code and the table (empty: they agree)."""
    events, built = code_events(ROOT / "lib", ROOT / "actors")
    rows = table_rows(readme)
    listed = set().union(*(names for names, _ in rows)) if rows else set()
    problems = [f"event name built at run time (write it literally): {place}"
                for place in built]
    problems += [f"logged but not in the README's table: {name} ({'/'.join(sorted(levels))})"
                 for name, levels in sorted(events.items()) if name not in listed]
    problems += [f"in the README's table but never logged: {name}"
                 for name in sorted(listed - set(events))]
    for names, levels in rows:
        for name in sorted(names & set(events)):
            if not events[name] <= levels:
                problems.append(f"{name} is logged at {'/'.join(sorted(events[name]))}; "
                                f"its row says {'/'.join(sorted(levels)) or 'nothing'}")
    return problems


def test_the_scan_finds_the_events_it_must() -> None:
    """The scan itself: events logged through every kind of call are found."""
    events, built = code_events(ROOT / "lib", ROOT / "actors")
    assert events["server.interrupted"] == {"warning"}  # a module logger
    assert "debug" in events["message.received"]  # ActorLog.debug_fields
    assert "debug" in events["dispatch.started"]  # ActorLog.debug_values
    assert {"warning", "error", "info"} <= events["dispatch.failed"]
    assert "notification.requeue_failed" in events
    assert len(events) >= 60
    assert not built


def test_the_readme_events_table_matches_the_code() -> None:
    problems = mismatches((ROOT / "README.md").read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)
