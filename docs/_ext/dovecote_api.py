"""The ``dovecote-api`` directive: a package's public names, from its ``__all__``.

```{dovecote-api} dovecote.rpc
```

documents the package (its docstring, as ``automodule`` shows it; option
``:no-docstring:`` leaves it out), then every name of its ``__all__``, in that
order: ``autoclass`` (with ``:members:``, and the bases when there are any) for
a class, ``autoexception`` for an exception, ``autofunction`` for a function,
and for a constant its value with the ``#:`` comment above its assignment. A
name several public packages export (the same object: ``dovecote.RPCClient`` is
``dovecote.rpc.RPCClient``) is documented once, in the first package of
:data:`PACKAGES` that exports it; the others get a one-line entry pointing
there (still a cross-reference target of its own, so ``dovecote.rpc.RPCClient``
resolves). Documenting one object twice would make Sphinx warn about a
duplicate description, and the build runs with ``-W``.

The build fails (a warning, under ``-W``) when a package of :data:`PACKAGES` is
not documented by any page, or a page documents a package the list lacks.

Cross-references in docstrings and type hints name things as the module that
wrote them sees them (``Transport``, ``_decoding.unpack``, a name imported only
for type checking). Before Sphinx resolves them, each Python reference inside a
described object is looked up in the namespace of the code that wrote it: a
public object is pointed at the name it is documented under (so ``Transport``
in ``dovecote.testing`` means ``dovecote.Transport``, not
``dovecote.oslo.Transport``); anything else that exists (a private helper, an
undocumented method) is shown as plain code instead of a link. A reference to
something that does not exist stays, and fails the build: the docstring is wrong.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
import types
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Parser as RSTParser
from docutils.utils import new_document
from sphinx.addnodes import desc, desc_signature, pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import object_description

__all__ = [
    "PACKAGES", "ApiDirective", "canonical_package", "public_names", "render", "resolve", "setup",
]

#: Every public package, in the order that decides where a name exported by
#: several of them is documented (the first one exporting it).
PACKAGES = (
    "dovecote",
    "dovecote.rpc",
    "dovecote.notify",
    "dovecote.observe",
    "dovecote.testing",
    "dovecote.metrics",
    "dovecote.tracing",
    "dovecote.actors",
    "dovecote.drivers",
    "dovecote.oslo",
    "dovecote.cli",
)

_log = logging.getLogger(__name__)
_ENV_KEY = "dovecote_api_documented"


def public_names(package: str) -> list[str]:
    """The package's ``__all__`` (it must have one)."""
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    if names is None:
        msg = f"{package} has no __all__: the API reference documents __all__ only"
        raise ValueError(msg)
    return list(names)


def _same(package: str, name: str, obj: Any) -> bool:
    """Whether ``package`` exports ``obj`` (by ``name``, for a plain value)."""
    module = importlib.import_module(package)
    if isinstance(obj, type) or inspect.isroutine(obj):
        return any(getattr(module, other, None) is obj for other in public_names(package))
    return name in public_names(package) and getattr(module, name, None) is obj


def canonical_package(package: str, name: str, packages: tuple[str, ...] = PACKAGES) -> str:
    """The package where ``package.name`` is documented: the first of
    ``packages`` exporting the same object."""
    obj = getattr(importlib.import_module(package), name)
    for candidate in packages:
        if _same(candidate, name, obj):
            return candidate
    return package


def _canonical_name(package: str, obj: Any, name: str) -> str:
    """``package.<the name it exports obj under>``."""
    module = importlib.import_module(package)
    for other in public_names(package):
        if getattr(module, other, None) is obj:
            return f"{package}.{other}"
    return f"{package}.{name}"


def _kind(obj: Any) -> str:
    """The autodoc directive (without ``auto``) and the Python domain role."""
    if isinstance(obj, type):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


_ROLE = {"exception": "exc", "class": "class", "function": "func", "data": "data"}


def render(package: str, packages: tuple[str, ...] = PACKAGES, *,
           docstring: bool = True) -> str:
    """The reStructuredText documenting ``package``'s public names."""
    module = importlib.import_module(package)
    lines = [f".. automodule:: {package}", "   :no-members:"]
    if not docstring:
        lines = [f".. py:module:: {package}"]
    lines.append("")
    submodules: list[str] = []
    for name in public_names(package):
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType):
            submodules.append(name)
            continue
        kind = _kind(obj)
        home = canonical_package(package, name, packages)
        if home == package and kind == "data":
            lines += _data(package, name, obj)
        elif home == package:
            lines.append(f".. auto{kind}:: {package}.{name}")
            if kind in {"class", "exception"}:
                lines.append("   :members:")
                if obj.__bases__ != (object,):
                    lines.append("   :show-inheritance:")
            lines.append("")
        else:
            target = _canonical_name(home, obj, name)
            lines += [
                f".. py:{kind}:: {name}",
                f"   :module: {package}",
                "   :no-index-entry:",
                "",
                f"   The same as :py:{_ROLE[kind]}:`{target}`, documented there.",
                "",
            ]
    if submodules:
        listed = ", ".join(f"``{package}.{name}``" for name in submodules)
        lines += [f"Submodules: {listed}.", ""]
    return "\n".join(lines)


def _defining_module(module: str, name: str) -> str:
    """The module whose source assigns ``name`` that ``module`` exports,
    following its imports."""
    for _ in range(10):
        origin = _imports(module).get(name)
        if origin is None or not origin.endswith(f".{name}"):
            return module
        module = origin.removesuffix(f".{name}")
    return module


def _data(package: str, name: str, obj: Any) -> list[str]:
    """A constant: its value, and the ``#:`` comment above its assignment.
    (``autodata`` reads comments in the package's own ``__init__`` only, and
    shows the docstring of the value's type where there is none.)"""
    where = _defining_module(package, name)
    docs = ModuleAnalyzer.for_module(where).find_attr_docs().get(("", name), [])
    value = " ".join(object_description(obj).split())
    return [f".. py:data:: {name}", f"   :module: {package}", f"   :value: {value}", "",
            *(f"   {line}" for line in docs), ""]


class ApiDirective(SphinxDirective):
    """``dovecote-api PACKAGE`` (option ``:no-docstring:``: leave the
    package's docstring out)."""

    required_arguments = 1
    has_content = False
    option_spec = {"no-docstring": lambda _arg: True}  # noqa: RUF012 (docutils' protocol)

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        packages: tuple[str, ...] = tuple(self.config.dovecote_api_packages)
        if package not in packages:
            _log.warning("dovecote-api: %s is not in dovecote_api_packages %s",
                         package, packages, location=self.get_location())
        documented: dict[str, str] = getattr(self.env, _ENV_KEY, {})
        documented[package] = self.env.docname
        setattr(self.env, _ENV_KEY, documented)
        text = render(package, packages, docstring="no-docstring" not in self.options)
        return self._parse(text)

    def _parse(self, text: str) -> list[nodes.Node]:
        """``text`` (reStructuredText) as nodes, on a reStructuredText page or
        a MyST one (whose nested parse reads Markdown, so the text is parsed
        on its own, as MyST's ``eval-rst`` does)."""
        if not hasattr(self.state, "_renderer"):  # reStructuredText
            return self.parse_text_to_nodes(text)
        main = self.state.document
        doc = new_document(main["source"], main.settings)
        doc.reporter = main.reporter
        # One set of ids and names: anchors stay unique across the whole page.
        doc.ids, doc.nameids, doc.nametypes = main.ids, main.nameids, main.nametypes
        RSTParser().parse(text, doc)
        return list(doc.children)


def _merge(_app: Sphinx, env: BuildEnvironment, _docnames: set[str],
           other: BuildEnvironment) -> None:
    mine: dict[str, str] = getattr(env, _ENV_KEY, {})
    mine.update(getattr(other, _ENV_KEY, {}))
    setattr(env, _ENV_KEY, mine)


def _purge(_app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    documented: dict[str, str] = getattr(env, _ENV_KEY, {})
    for package in [p for p, doc in documented.items() if doc == docname]:
        del documented[package]


def _check(app: Sphinx, env: BuildEnvironment) -> None:
    """Every public package documented (the one-line entries point there)."""
    documented: dict[str, str] = getattr(env, _ENV_KEY, {})
    for package in app.config.dovecote_api_packages:
        if package not in documented:
            _log.warning("dovecote-api: public package %s is documented by no page "
                         "(add a dovecote-api directive for it)", package)


# -- cross-references: as the code that wrote them sees them ------------------

#: A reference inside generated API text whose object exists but is not in
#: the reference (private, or undocumented): shown as code, not as a link.
_EXISTS = "dovecote_target_exists"


def _walk(obj: Any, attrs: list[str]) -> list[tuple[str, Any]] | None:
    """``[(attr, object), ...]`` along ``attrs`` from ``obj``, or None."""
    chain = []
    for attr in attrs:
        try:
            obj = getattr(obj, attr)
        except Exception:  # noqa: BLE001 (a property may raise anything)
            return None
        chain.append((attr, obj))
    return chain


def _module(name: str) -> types.ModuleType | None:
    """Module ``name``, imported if need be, but only below a package that is
    imported already: a reference's text never imports a module of its own
    (``this`` would print, ``antigravity`` open a browser)."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return None
    found = sys.modules.get(name)
    if found is not None or name.partition(".")[0] not in sys.modules:
        return found
    return _import(name)


@cache
def _import(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 (not a module, or one that cannot be imported here)
        return None


def _lookup(dotted: str) -> list[tuple[str, Any]] | None:
    """The objects along ``dotted`` (the longest importable module, then
    attributes), or None when nothing is there."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module(".".join(parts[:cut]))
        if module is not None:
            chain = _walk(module, parts[cut:])
            return None if chain is None else [(".".join(parts[:cut]), module), *chain]
    return None


@cache
def _imports(modname: str) -> dict[str, str]:
    """What module ``modname``'s source imports, by the name it binds, as an
    absolute dotted path (imports made only for type checking included)."""
    module = _module(modname)
    path = getattr(module, "__file__", None)
    if module is None or not path or not path.endswith(".py"):
        return {}
    real = module.__name__
    package = real if path.endswith("__init__.py") else real.rpartition(".")[0]
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] \
                if node.level else []
            origin = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                found[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:
                    head = alias.name.partition(".")[0]
                    found[head] = head
    return found


def resolve(target: str, modules: Sequence[str],
            owners: Sequence[Any] = ()) -> list[tuple[str, Any]] | None:
    """The objects along ``target`` as seen from the classes ``owners`` (a
    method's siblings) and then the modules ``modules`` (their globals, what
    they import, their package), else as an absolute path; None if nothing."""
    name = target.lstrip("~").lstrip(".")
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return None
    head, _, rest = name.partition(".")
    attrs = name.split(".")
    for owner in owners:
        chain = _walk(owner, attrs)
        if chain is not None:
            return [(getattr(owner, "__qualname__", ""), owner), *chain]
    for modname in modules:
        module = _module(modname)
        if module is None:
            continue
        if hasattr(module, head):
            chain = _walk(module, attrs)
            if chain is not None:
                return [(module.__name__, module), *chain]
        origin = _imports(modname).get(head)
        if origin is not None:
            chain = _lookup(f"{origin}.{rest}" if rest else origin)
            if chain is not None:
                return chain
        package = module.__name__.rpartition(".")[0]
        if package:
            chain = _lookup(f"{package}.{name}")
            if chain is not None:
                return chain
    found = _lookup(name)
    if found is not None:
        return found
    for modname in modules:  # a package's docstring naming what one of its modules defines
        module = _module(modname)
        if module is not None and hasattr(module, "__path__"):
            chain = _defined_below(module.__name__, head, attrs)
            if chain is not None:
                return chain
    return None


def _defined_below(package: str, head: str, attrs: list[str]) -> list[tuple[str, Any]] | None:
    """``head`` (then ``attrs[1:]``) as the one module of ``package`` whose
    source defines it at its top level has it."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        source = Path(info.module_finder.path) / f"{info.name}.py"  # type: ignore[union-attr]
        if info.ispkg or not source.exists():
            continue
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if getattr(node, "name", None) == head or head in names:
                found.append(f"{package}.{info.name}")
    if len(found) != 1:
        return None
    return _lookup(".".join([found[0], *attrs]))


def _key(name: str, obj: Any) -> tuple[int, str]:
    """How a documented object is recognised: by identity (and name, for a
    plain value such as a string constant, which others may share)."""
    if isinstance(obj, type) or inspect.isroutine(obj):
        return (id(obj), "")
    return (id(obj), name)


@cache
def _documented(packages: tuple[str, ...]) -> dict[tuple[int, str], str]:
    """Every public object, by :func:`_key`, and the name it is documented under."""
    found: dict[tuple[int, str], str] = {}
    for package in reversed(packages):  # the first package (and name) exporting it wins
        module = importlib.import_module(package)
        for name in reversed(public_names(package)):
            obj = getattr(module, name)
            if not isinstance(obj, types.ModuleType):
                found[_key(name, obj)] = f"{package}.{name}"
    return found


def documented_name(chain: list[tuple[str, Any]], packages: tuple[str, ...]) -> str | None:
    """The reference's name in the API reference: the last object of ``chain``
    that is documented, then the attributes after it."""
    if isinstance(chain[-1][1], types.ModuleType):
        for package in packages:
            if importlib.import_module(package) is chain[-1][1]:
                return package
        return None
    known = _documented(packages)
    for index in range(len(chain) - 1, -1, -1):
        name, obj = chain[index]
        home = known.get(_key(name.rpartition(".")[2], obj))
        if home is not None:
            return ".".join([home, *(attr for attr, _ in chain[index + 1:])])
    return None


def _context(node: pending_xref) -> tuple[bool, list[str], list[Any]]:
    """Whether ``node`` is in generated API text, and the modules and classes
    its names are seen from: those of the described object and its owners
    (where their code is, then where they are documented)."""
    modules: list[str] = []
    owners: list[Any] = []
    described: list[str] = []
    parent = node.parent
    while parent is not None:
        if isinstance(parent, desc) and parent.children and isinstance(
                parent.children[0], desc_signature):
            sig = parent.children[0]
            if sig.get("module") and sig.get("fullname"):
                described.append(f"{sig['module']}.{sig['fullname']}")
        parent = parent.parent
    source = node.source or ""
    if ":docstring of " in source:
        described.append(source.rpartition(":docstring of ")[2])
    for path in described:
        chain = _lookup(path) or []
        for _, obj in reversed(chain):
            classes = [c for c in obj.__mro__ if c is not object] if isinstance(obj, type) \
                else [obj]
            for each in classes:
                if isinstance(each, type) and each not in owners:
                    owners.append(each)
                where = each.__name__ if isinstance(each, types.ModuleType) else getattr(
                    each, "__module__", None)
                if isinstance(where, str) and where not in modules:
                    modules.append(where)
        if path.rpartition(".")[0] not in modules:
            modules.append(path.rpartition(".")[0])
    if node.get("py:module") and node["py:module"] not in modules:
        modules.append(node["py:module"])
    return bool(described), modules, owners


def _resolve_references(app: Sphinx, doctree: nodes.document) -> None:
    """Point each Python reference at the name its object is documented under
    (see the module docstring)."""
    packages: tuple[str, ...] = tuple(app.config.dovecote_api_packages)
    for node in list(doctree.findall(pending_xref)):
        if node.get("refdomain") != "py":
            continue
        generated, modules, owners = _context(node)
        chain = resolve(node["reftarget"], modules, owners)
        if node.get("reftype") == "mod":
            chain = chain if chain and isinstance(chain[-1][1], types.ModuleType) else None
        if chain is None:
            continue
        name = documented_name(chain, packages)
        if name is not None:
            node["reftarget"] = name
            if "refspecific" in node:
                del node["refspecific"]
        if generated:
            node[_EXISTS] = True


def _missing_reference(_app: Sphinx, _env: BuildEnvironment, node: pending_xref,
                       contnode: nodes.TextElement) -> nodes.Node | None:
    """A reference in generated API text to something that exists but is not
    documented: plain code."""
    if node.get("refdomain") == "py" and node.get(_EXISTS):
        return contnode
    return None


def _factory_text(factory: Any) -> str:
    """How a dataclass field's ``default_factory`` reads as a default."""
    if factory in {dict, list, tuple}:
        return repr(factory())
    name = getattr(factory, "__qualname__", "")
    return f"{name}()" if name.isidentifier() else "..."


def _angle_defaults(signature: str) -> str:
    """Defaults whose repr is ``<...>`` (a sentinel ``<object object at ...>``,
    a ``<function ...<lambda>>``) as ``...``, and ``<class 'a.B'>`` as ``B``:
    Sphinx parses a signature as Python, and on failure links none of its types."""
    out: list[str] = []
    index = 0
    while index < len(signature):
        char = signature[index]
        if char == "<" and signature[:index].rstrip().endswith("="):
            depth, end = 0, index
            for end in range(index, len(signature)):
                depth += {"<": 1, ">": -1}.get(signature[end], 0)
                if depth == 0:
                    break
            text = signature[index:end + 1]
            found = re.fullmatch(r"<class '([\w.]+)'>", text)
            out.append(found.group(1).rpartition(".")[2] if found else "...")
            index = end + 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _readable_signature(_app: Sphinx, _what: str, _name: str, obj: Any, _options: Any,
                        signature: str | None, return_annotation: str | None,
                        ) -> tuple[str | None, str | None] | None:
    """A dataclass's ``<factory>`` defaults as what the factory makes, other
    ``<...>`` defaults as :func:`_angle_defaults` writes them."""
    if signature is None or "<" not in signature:
        return None
    if "<factory>" in signature and dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            if field.init and field.default_factory is not dataclasses.MISSING:
                signature = signature.replace(
                    "<factory>", _factory_text(field.default_factory), 1)
    return _angle_defaults(signature), return_annotation


def _skip_foreign_docstrings(_app: Sphinx, _what: str, name: str, obj: Any,
                             skip: bool,  # noqa: FBT001 (Sphinx's signature)
                             _options: Any) -> bool | None:
    """Leave out a method that has no docstring of its own and would show the
    one it overrides from another library (pykka's ``on_start``, say): those
    describe the library's hook, not what dovecote's method does."""
    if skip or not inspect.isroutine(obj):
        return None
    function = inspect.unwrap(getattr(obj, "__func__", obj))
    if getattr(function, "__doc__", None):
        return None  # its own docstring
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    owner_name = getattr(function, "__qualname__", "").rpartition(".")[0]
    owner = getattr(module, owner_name, None) if owner_name.isidentifier() else None
    if not isinstance(owner, type) or not owner.__module__.startswith("dovecote"):
        return None
    for base in owner.__mro__[1:]:
        found = base.__dict__.get(name)
        if found is not None and getattr(found, "__doc__", None):
            return True if not base.__module__.startswith("dovecote") else None
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("dovecote_api_packages", PACKAGES, "env", types=[tuple, list])
    app.add_directive("dovecote-api", ApiDirective)
    app.connect("env-merge-info", _merge)
    app.connect("env-purge-doc", _purge)
    app.connect("env-check-consistency", _check)
    app.connect("doctree-read", _resolve_references)
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-process-signature", _readable_signature)
    app.connect("autodoc-skip-member", _skip_foreign_docstrings)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
