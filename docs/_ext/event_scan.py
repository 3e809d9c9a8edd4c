"""The log events dovecote's code writes, found by reading its source with :mod:`ast`.

A log call is a call of one of :data:`METHODS` on anything (a module logger,
an actor's log) whose first argument is a literal event name such as
``"listener.started"``; the method says the level. Each event's logger is the
one its module logs to: the module's own (``log = get_logger(__name__)``,
named without private underscores: ``dovecote.rpc._server`` logs to
``dovecote.rpc.server``), else the one its package names literally
(``get_logger("dovecote.actors")``: every actor's log).

Used by the docs build (``dovecote_events``) and by
``tests/observe/test_stdlib_logging_events.py``, which both compare it with
``events.toml``, the events' descriptions: :func:`mismatches` says where they
disagree.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DATA",
    "EVENT",
    "LEVELS",
    "METHODS",
    "ROOT",
    "Logged",
    "code_events",
    "descriptions",
    "logger_name",
    "mismatches",
    "scan",
]

ROOT = Path(__file__).resolve().parents[2]
#: The descriptions of the events.
DATA = Path(__file__).with_name("events.toml")
#: Where the code lives, and the package each folder is.
SOURCES = {ROOT / "lib": "dovecote", ROOT / "actors": "dovecote.actors"}
#: What dovecote's loggers and ActorLog offer, and the level each logs at.
METHODS = {"debug": "debug", "debug_fields": "debug", "debug_values": "debug",
           "record_values": "debug", "info": "info", "warning": "warning", "error": "error",
           "critical": "critical"}
EVENT = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclasses.dataclass
class Logged:
    """One event as the code logs it."""

    event: str
    levels: set[str] = dataclasses.field(default_factory=set)
    loggers: set[str] = dataclasses.field(default_factory=set)
    #: ``path:line`` of each log call.
    places: list[str] = dataclasses.field(default_factory=list)


def logger_name(module: str) -> str:
    """The logger name of ``module`` (as ``dovecote.observe._logging`` names it:
    without the private underscores)."""
    return ".".join(part.lstrip("_") or part for part in module.split("."))


def _module_name(path: Path) -> str:
    for root, package in SOURCES.items():
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    msg = f"{path} is in no source folder"
    raise ValueError(msg)


def _is_get_logger(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "get_logger" and len(node.args) == 1)


def _module_logger(tree: ast.Module) -> bool:
    """Whether the module has its own logger (``x = get_logger(__name__)`` at
    its top level, or ``get_logger(__name__)`` called inline)."""
    for node in ast.walk(tree):
        if _is_get_logger(node):
            arg = node.args[0]  # type: ignore[attr-defined]
            if isinstance(arg, ast.Name) and arg.id == "__name__":
                return True
    return False


def _literal_loggers(folder: Path) -> set[str]:
    """The logger names a folder's modules pass to ``get_logger`` as literals."""
    found = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _is_get_logger(node):
                arg = node.args[0]  # type: ignore[attr-defined]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


def scan(*roots: Path) -> tuple[dict[str, Logged], list[str]]:
    """Every event logged under ``roots`` (default: ``lib/`` and ``actors/``),
    and the places where an event name is built at run time (an f-string:
    not checkable, so not allowed)."""
    events: dict[str, Logged] = {}
    built: list[str] = []
    for root in roots or tuple(SOURCES):
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = _module_name(path)
            logger: str | None = logger_name(module) if _module_logger(tree) else None
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in METHODS and node.args):
                    continue
                first = node.args[0]
                place = f"{path.relative_to(ROOT)}:{node.lineno}"
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if not EVENT.fullmatch(first.value):
                        continue
                    if logger is None:
                        literal = _literal_loggers(path.parent)
                        if len(literal) != 1:
                            msg = (f"{place}: cannot tell which logger {first.value} goes to "
                                   f"(no module logger; literal loggers here: {sorted(literal)})")
                            raise ValueError(msg)
                        logger = literal.pop()
                    found = events.setdefault(first.value, Logged(first.value))
                    found.levels.add(METHODS[node.func.attr])
                    found.loggers.add(logger)
                    found.places.append(place)
                elif isinstance(first, ast.JoinedStr):
                    head = first.values[0] if first.values else None
                    if (isinstance(head, ast.Constant) and isinstance(head.value, str)
                            and re.match(r"[a-z_]+\.", head.value)):
                        built.append(place)
    return events, built


def code_events(*roots: Path) -> tuple[dict[str, set[str]], list[str]]:
    """``{event: {levels}}`` of every log call under ``roots``, and the places
    where an event name is built at run time."""
    events, built = scan(*roots)
    return {name: logged.levels for name, logged in events.items()}, built


def descriptions(path: Path = DATA) -> dict[str, Mapping[str, Any]]:
    """``events.toml``: ``{event: {"levels": [...], "meaning": "..."}}``."""
    with path.open("rb") as file:
        table: dict[str, Mapping[str, Any]] = tomllib.load(file)["events"]
    return table


def mismatches(events: Mapping[str, Logged] | None = None,
               described: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Where the code and ``events.toml`` disagree (empty: they agree)."""
    built: list[str] = []
    if events is None:
        events, built = scan()
    if described is None:
        described = descriptions()
    name = DATA.name
    problems = [f"event name built at run time (write it literally): {place}"
                for place in built]
    problems += [f"logged but not in {name}: {event} ({'/'.join(sorted(logged.levels))}, "
                 f"{logged.places[0]})"
                 for event, logged in sorted(events.items()) if event not in described]
    problems += [f"in {name} but never logged: {event}"
                 for event in sorted(set(described) - set(events))]
    for event in sorted(set(described) & set(events)):
        entry = described[event]
        unknown = set(entry) - {"levels", "meaning"}
        if unknown:
            problems.append(f"{name}: {event} has unknown keys {sorted(unknown)}")
        if not str(entry.get("meaning", "")).strip():
            problems.append(f"{name}: {event} has no meaning")
        if "|" in str(entry.get("meaning", "")):
            problems.append(f"{name}: {event}: no '|' in a table cell")
        levels = set(entry.get("levels", ()))
        if levels - set(LEVELS):
            problems.append(f"{name}: {event} names unknown levels {sorted(levels - set(LEVELS))}")
        if levels != events[event].levels:
            problems.append(f"{event} is logged at {'/'.join(sorted(events[event].levels))}; "
                            f"{name} says {'/'.join(sorted(levels)) or 'nothing'} "
                            f"(check its meaning too)")
    return problems
