"""The ``dovecote-cli`` directive: the ``dovecote`` command's reference, from its parser.

```{dovecote-cli}
```

reads the argparse parser the command itself uses
(:func:`dovecote.cli._parser.build`) and renders one section for the command
(usage, description, options) and then one per subcommand, in the parser's
order: its usage, its description (or help line) and a table of its arguments
(name, default, choices, help text). Nothing is written by hand, so the page
cannot drift from the command. The sections are ``##`` headings of the page
(anchors ``#dovecote-call`` ...): put the directive after the page's text.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

__all__ = ["CliDirective", "markdown", "parsers", "setup"]


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser and each subcommand's, as the command builds them."""
    from dovecote.cli._parser import build

    return build()


def _code(text: str) -> str:
    """Options, ``$VARIABLES`` and ``pip install ...`` in help text as code."""
    text = re.sub(r"pip install '[^']+'", lambda m: f"`{m.group(0)}`", text)
    return re.sub(r"(?<![\w`-])(--[a-z][\w-]*|\$[A-Z_]+)", r"`\1`", text)


def _cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return _code(" ".join(text.split())).replace("|", "\\|")


def _paragraphs(text: str) -> list[str]:
    """A description written for a terminal, as Markdown paragraphs."""
    out: list[str] = []
    for block in text.strip().split("\n\n"):
        out += [_code(" ".join(block.split())), ""]
    return out


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        name = str(action.metavar or action.dest)
        return f"`[{name}]`" if action.nargs == "?" else f"`{name}`"
    flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
    if action.nargs == 0:
        return flags
    metavar = action.metavar or action.dest.upper()
    repeat = f" {metavar} ..." if action.nargs in {"+", "*"} else ""
    return f"{flags} `{metavar}`{repeat}"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in {None, argparse.SUPPRESS}:
        return ""
    return f"`{action.default}`"


def _meaning(action: argparse.Action) -> str:
    parts = []
    if action.help and action.help != argparse.SUPPRESS:
        parts.append(action.help)
    if action.choices is not None:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in action.choices))
    if action.nargs in {"+", "*"}:
        parts.append("several may follow")
    return _cell("; ".join(parts))


def _usage(parser: argparse.ArgumentParser) -> list[str]:
    """The usage lines, at a fixed width (not the terminal's)."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return ["```text", formatter.format_help().strip(), "```", ""]


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    rows = [action for action in parser._actions  # argparse keeps them nowhere public
            if not isinstance(action, argparse._HelpAction)]
    lines = ["| argument | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| {_name(a)} | {_default(a)} | {_meaning(a)} |" for a in rows]
    return lines


def markdown() -> list[str]:
    """The whole reference, as MyST Markdown lines."""
    parser, subcommands = parsers()
    lines = ["## dovecote", "", *_usage(parser)]
    lines += _paragraphs(parser.description or "")
    top = [a for a in parser._actions if a.option_strings
           and not isinstance(a, argparse._HelpAction)]
    lines += ["| option | meaning |", "| --- | --- |"]
    lines += [f"| {_name(a)} | {_cell(a.help or '')} |" for a in top]
    lines.append("")
    lines += _paragraphs(parser.epilog or "")
    helps = _subcommand_help(parser)
    for name, sub in subcommands.items():
        lines += [f"## dovecote {name}", "", *_usage(sub)]
        lines += _paragraphs(helps.get(name, ""))
        if sub.description:
            lines += _paragraphs(sub.description)
        lines += [*_arguments(sub), ""]
    return lines


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help (what ``dovecote --help`` lists)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


class CliDirective(SphinxDirective):
    """``dovecote-cli``: the reference (on a MyST page: it is Markdown)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(markdown(), source="dovecote-cli"),
                                 container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("dovecote-cli", CliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
