"""Exceptions a test endpoint raises remotely: a caller that lists this module
in ``allowed_remote_exmods`` gets them back as their own classes."""

from __future__ import annotations


class Boom(Exception):
    """A plain application error."""


class Refused(Exception):
    """An application error with keyword arguments."""

    def __init__(self, reason: str = "", *, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.kwargs = {"code": code}
