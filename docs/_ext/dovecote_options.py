"""The ``dovecote-options`` directive: one table of every transport option.

```{dovecote-options}
```

renders option | transports | default | meaning, one row per option name a
built-in driver reads. Everything but the meaning comes from the code:

* which options each driver reads: its ``Driver.option_names`` (the names a
  driver checks a URL against), plus ``control_exchange``, which every driver
  takes (``Driver.__init__``);
* the transports: the URL schemes of :data:`dovecote._transport._BUILTIN_DRIVERS`,
  one column label per driver class;
* the defaults: the kombu driver's ``KombuOptions`` fields, the TLS options'
  ``TLSOptions`` fields, and the literal defaults the ``amqp1`` driver reads its
  options with (``options.get("prefetch", 10)``, found with :mod:`ast`).

The meanings are in ``options.toml`` beside this file. The build fails when it
and the code disagree: an option the code reads that the file does not
describe, an option the file describes that no driver reads, a default the file
states where the code has one (the code's wins; the file may add a
``default_note``), or none where the code has none.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

__all__ = ["DATA", "Option", "OptionsDirective", "code_options", "options", "problems", "setup"]

#: The meanings (and what the code cannot say: a default made at run time).
DATA = Path(__file__).with_name("options.toml")
#: The TLS options' fields of ``TLSOptions`` where the name is not ``ssl_<field>``.
_TLS_FIELDS = {"ssl": "enabled", "ssl_version": "min_version"}
#: Where the amqp1 driver reads its options (with their defaults as literals).
_AMQP1_PACKAGE = "dovecote.drivers.amqp1"


@dataclasses.dataclass
class Option:
    """One row: an option name and what each driver that reads it says."""

    name: str
    #: Driver label (``rabbit``) -> the default in the code (``_NONE``: none).
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    meaning: str = ""
    default_text: str | None = None
    default_note: str = ""
    alias_of: str | None = None


_NONE: Any = object()  # the code gives no default (None, or made at run time)


def drivers() -> dict[str, tuple[type[Any], list[str], str]]:
    """Each built-in driver class by its label (its first scheme), with its
    schemes and its import path."""
    from dovecote._transport import _BUILTIN_DRIVERS

    found: dict[str, tuple[type[Any], list[str], str]] = {}
    by_class: dict[type[Any], str] = {}
    for scheme, path in _BUILTIN_DRIVERS.items():
        cls = _class(path)
        label = by_class.setdefault(cls, scheme)
        found.setdefault(label, (cls, [], path.replace(":", ".")))[1].append(scheme)
    return found


def _literal_defaults(package: str) -> dict[str, Any]:
    """``{option: default}`` of ``options.get("name", LITERAL)`` and
    ``_float(options, "name", LITERAL)`` in the package's modules."""
    module = importlib.import_module(package)
    found: dict[str, list[Any]] = {}
    for path in sorted(Path(next(iter(module.__path__))).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            args = node.args
            if (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "options"
                    and len(args) == 2):
                key, default = args
            elif (isinstance(node.func, ast.Name) and len(args) == 3
                    and isinstance(args[0], ast.Name) and args[0].id == "options"):
                _, key, default = args
            else:
                continue
            if (isinstance(key, ast.Constant) and isinstance(key.value, str)
                    and isinstance(default, ast.Constant)):
                found.setdefault(key.value, []).append(default.value)
    out: dict[str, Any] = {}
    for name, values in found.items():
        if len({repr(v) for v in values}) != 1:
            msg = f"{package} reads option {name} with different defaults: {values}"
            raise ExtensionError(msg)
        out[name] = values[0]
    return out


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return _NONE if field.default is None else field.default
    factory: Any = field.default_factory
    if factory in {dict, list, tuple}:
        return factory()
    return _NONE  # made at run time: the data file says what


def code_options() -> dict[str, Option]:
    """Every option a built-in driver reads, with the code's defaults."""
    from dovecote.drivers._tls import TLS_OPTION_NAMES, TLSOptions
    from dovecote.drivers.base import Driver
    from dovecote.drivers.kombu._options import KombuOptions

    tls_fields = {f.name: f for f in dataclasses.fields(TLSOptions)}
    tls_defaults = {}
    for name in TLS_OPTION_NAMES:
        field = _TLS_FIELDS.get(name, name.removeprefix("ssl_"))
        if field not in tls_fields:
            msg = f"TLS option {name}: TLSOptions has no field {field!r} (update _TLS_FIELDS)"
            raise ExtensionError(msg)
        tls_defaults[name] = _field_default(tls_fields[field])
    kombu_defaults = {f.name: _field_default(f) for f in dataclasses.fields(KombuOptions)}
    amqp1_defaults = _literal_defaults(_AMQP1_PACKAGE)
    every = inspect.signature(Driver.__init__).parameters["control_exchange"].default

    found: dict[str, Option] = {}
    for label, (cls, _, _) in drivers().items():
        names = set(cls.option_names or ()) | {"control_exchange"}
        for name in sorted(names):
            if name == "control_exchange":
                default = every
            elif name in TLS_OPTION_NAMES:
                default = tls_defaults[name]
            elif issubclass(cls, _class("dovecote.drivers.kombu:KombuDriver")):
                default = kombu_defaults.get(name, _NONE)
            elif issubclass(cls, _class("dovecote.drivers.amqp1:Amqp1Driver")):
                default = amqp1_defaults.get(name, _NONE)
            else:
                default = _NONE
            found.setdefault(name, Option(name)).defaults[label] = default
    return found


def _class(path: str) -> type[Any]:
    module, _, attr = path.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), attr)
    return cls


def _data() -> dict[str, Mapping[str, Any]]:
    with DATA.open("rb") as file:
        table: dict[str, Mapping[str, Any]] = tomllib.load(file)["options"]
    return table


def problems() -> list[str]:
    """Where ``options.toml`` and the code disagree (empty: they agree)."""
    code, data = code_options(), _data()
    out = [f"{DATA.name}: option {name} is read by the code but not described "
           f"({', '.join(sorted(code[name].defaults))})" for name in sorted(set(code) - set(data))]
    out += [f"{DATA.name}: option {name} is described but no driver reads it"
            for name in sorted(set(data) - set(code))]
    for name in sorted(set(code) & set(data)):
        entry, known = data[name], code[name].defaults
        unknown_keys = set(entry) - {"meaning", "default", "default_note", "alias_of"}
        if unknown_keys:
            out.append(f"{DATA.name}: option {name} has unknown keys {sorted(unknown_keys)}")
        if not str(entry.get("meaning", "")).strip():
            out.append(f"{DATA.name}: option {name} has no meaning")
        if "|" in str(entry.get("meaning", "")) + str(entry.get("default", "")):
            out.append(f"{DATA.name}: option {name}: no '|' in a table cell")
        alias = entry.get("alias_of")
        if alias is not None:
            if alias not in code:
                out.append(f"{DATA.name}: option {name} is an alias of {alias}, not an option")
            continue
        missing = sorted(label for label, default in known.items() if default is _NONE)
        if missing and "default" not in entry:
            out.append(f"{DATA.name}: option {name} has no default in the code "
                       f"({', '.join(missing)}): give one (`default`)")
        if not missing and "default" in entry:
            out.append(f"{DATA.name}: option {name}'s default comes from the code "
                       f"({_show_defaults(known)}): remove `default` "
                       "(`default_note` may add to it)")
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping) and not value:
        return "{}"
    return str(value)


def _show_defaults(defaults: Mapping[str, Any]) -> str:
    shown = {label: f"`{_show(value)}`" for label, value in defaults.items() if value is not _NONE}
    if len(set(shown.values())) <= 1:
        return next(iter(shown.values()), "")
    return "; ".join(f"{label}: {text}" for label, text in shown.items())


def options() -> list[Option]:
    """Every option, with its meaning, in name order (checked: see :func:`problems`)."""
    found = problems()
    if found:
        raise ExtensionError("the transport options table and the code disagree:\n  "
                             + "\n  ".join(found))
    code, data = code_options(), _data()
    out = []
    for name in sorted(code):
        option, entry = code[name], data[name]
        option.meaning = str(entry["meaning"]).strip()
        option.default_text = entry.get("default")
        option.default_note = str(entry.get("default_note", ""))
        option.alias_of = entry.get("alias_of")
        out.append(option)
    return out


def _default_cell(option: Option) -> str:
    if option.alias_of is not None:
        return f"as `{option.alias_of}`"
    shown = _show_defaults(option.defaults)
    if option.default_text is not None:
        shown = f"{shown}; {option.default_text}" if shown else str(option.default_text)
    return f"{shown} {option.default_note}".strip()


def table() -> list[str]:
    """The Markdown lines of the legend and the table."""
    labels = drivers()
    lines = ["Transports:", ""]
    for label, (_, schemes, path) in labels.items():
        written = ", ".join("`kombu+SCHEME://` (any kombu transport)" if scheme == "kombu"
                            else f"`{scheme}://`" for scheme in schemes)
        lines.append(f"* `{label}`: {written}; driver `{path}`")
    lines += ["", "| option | transports | default | meaning |", "| --- | --- | --- | --- |"]
    for option in options():
        where = ", ".join(option.defaults) if len(option.defaults) < len(labels) else "all"
        lines.append(f"| `{option.name}` | {where} | {_default_cell(option)} "
                     f"| {' '.join(option.meaning.split())} |")
    return lines


class OptionsDirective(SphinxDirective):
    """``dovecote-options``: the table (on a MyST page: its cells are Markdown)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(DATA))
        container = nodes.container(classes=["dovecote-options"])
        self.state.nested_parse(StringList(table(), source=str(DATA)), 0, container)
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("dovecote-options", OptionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
