"""The ``dovecote-events`` directive: the table of log events, from the code.

```{dovecote-events}
```

renders event | level(s) | logger | meaning, one row per event name the code
logs (found by :mod:`event_scan`, which reads ``lib/`` and ``actors/``), in
name order; the levels and the loggers come from the code, the meaning from
``events.toml``. The build fails when the two disagree (an event logged and
not described, one described and never logged, levels that differ, an event
name built at run time): :func:`event_scan.mismatches`.
"""

from __future__ import annotations

from typing import Any

import event_scan
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

__all__ = ["EventsDirective", "setup", "table"]


def table() -> list[str]:
    """The Markdown lines of the table (checked first)."""
    events, built = event_scan.scan()
    described = event_scan.descriptions()
    problems = event_scan.mismatches(events, described)
    problems += [f"event name built at run time (write it literally): {place}"
                 for place in built]
    if problems:
        raise ExtensionError("the log events table and the code disagree:\n  "
                             + "\n  ".join(problems))
    order = {level: index for index, level in enumerate(event_scan.LEVELS)}
    lines = ["| event | level | logger | meaning |", "| --- | --- | --- | --- |"]
    for name in sorted(events):
        logged = events[name]
        levels = ", ".join(sorted(logged.levels, key=order.__getitem__))
        loggers = ", ".join(f"`{logger}`" for logger in sorted(logged.loggers))
        meaning = " ".join(str(described[name]["meaning"]).split())
        lines.append(f"| `{name}` | {levels} | {loggers} | {meaning} |")
    return lines


class EventsDirective(SphinxDirective):
    """``dovecote-events``: the table (on a MyST page: its cells are Markdown)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(event_scan.DATA))
        container = nodes.container(classes=["dovecote-events"])
        self.state.nested_parse(StringList(table(), source=str(event_scan.DATA)), 0, container)
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("dovecote-events", EventsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
