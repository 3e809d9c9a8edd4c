"""Exceptions the interoperability tests raise in endpoints: this module is
listed in ``allowed_remote_exmods`` on both sides, so its exceptions come back
to callers as their own class (dovecote and oslo.messaging alike)."""

from __future__ import annotations


class InteropError(Exception):
    """A custom exception with an extra attribute, rebuilt from its ``args``."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message, code)
        self.code = code
