"""The one wording every option dovecote registers but does not act on shares
(see :mod:`._optdefs`): the help text is built from the same reason the
``UNIMPLEMENTED`` table gives, so the two cannot drift apart."""

from __future__ import annotations

__all__ = ["NOT_IMPLEMENTED_PREFIX", "NOT_IMPLEMENTED_SUFFIX", "not_implemented"]

NOT_IMPLEMENTED_PREFIX = "Not implemented by dovecote: "
NOT_IMPLEMENTED_SUFFIX = "; registered so existing configuration files load."


def not_implemented(reason: str) -> str:
    """The help text of an option dovecote does not implement, for ``reason``."""
    return f"{NOT_IMPLEMENTED_PREFIX}{reason}{NOT_IMPLEMENTED_SUFFIX}"
