"""oslo.messaging's functional call, cast and notify tests (its metrics case
tests oslo.metrics and is left out), imported from the installed
oslo.messaging and run against dovecote.oslo by the hook in conftest.py."""

from oslo_messaging.tests.functional.test_functional import (
    CallTestCase,
    CastTestCase,
    NotifyTestCase,
)

__all__ = ["CallTestCase", "CastTestCase", "NotifyTestCase"]
