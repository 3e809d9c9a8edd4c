"""dovecote's pytest plugin (entry point ``pytest11``: ``dovecote``).

Fixtures, all named ``dovecote_*``:

* ``dovecote_url``: ``memory://dovecote-<unique>`` per test, or the URL given
  with ``--dovecote-url=URL`` (else the environment variable
  ``DOVECOTE_TEST_URL``): the same tests then run on a real broker;
* ``dovecote_transport``: a transport on that URL, cleaned up after the test,
  and the queues it declared that did not exist before (servers' topic and
  server queues, notification queues and pools, dead-letter queues) deleted
  from the broker (see :class:`dovecote.testing.DeclaredQueues`);
* ``dovecote_topic``: a topic no other test uses, its queues deleted after
  the test (see :func:`dovecote.testing.forget_topic`);
* ``dovecote_notifications``: what the ``test`` notifier driver kept during
  the test (:class:`dovecote.testing.SentNotifications`), reset before and after.

The helpers tests use with them live in :mod:`dovecote.testing`:
``running(server)``, ``call_endpoint(...)``, and ``wait_for(server, "add")``,
either around the send (``with wait_for(server, "add") as waited:``, which
sees what the method returned) or as a plain call after it (it blocks until
the server's event history shows the call handled, since the server started
or since ``since=dovecote.testing.mark(server)``). A ``wait_for`` used the
wrong way fails the test with a clear error; it never passes silently.

Loading the plugin imports dovecote's core (not the drivers' client libraries,
nor its command line) and nothing else; it defines no autouse fixture, so
other test suites in the same environment are not affected.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest

from .._transport import Transport, get_transport
from .._url import TransportURL, mask_url
from . import DeclaredQueues, SentNotifications, forget_topic, unique_topic

__all__ = [
    "dovecote_notifications",
    "dovecote_topic",
    "dovecote_transport",
    "dovecote_url",
    "pytest_addoption",
    "pytest_report_header",
]

#: The environment variable that names a broker when ``--dovecote-url`` is not given.
URL_VARIABLE = "DOVECOTE_TEST_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dovecote")
    group.addoption(
        "--dovecote-url", dest="dovecote_url", default=None, metavar="URL",
        help=("run the tests' dovecote_transport on this transport URL (a real broker, "
              f"e.g. rabbit://guest:guest@127.0.0.1:5672/) instead of a fresh memory:// "
              f"per test; default: ${URL_VARIABLE}, else memory://"))


def _configured_url(config: pytest.Config) -> str | None:
    url: str | None = config.getoption("dovecote_url", default=None)
    return url or os.environ.get(URL_VARIABLE) or None


def pytest_report_header(config: pytest.Config) -> str | None:
    url = _configured_url(config)
    if url is None:
        return None
    try:
        shown = str(TransportURL.parse(url))  # the password masked
    except Exception:  # noqa: BLE001 - the fixture reports a bad URL; the header stays quiet
        shown = mask_url(url)
    return f"dovecote: transports on {shown}"


@pytest.fixture
def dovecote_url(request: pytest.FixtureRequest) -> str:
    """The transport URL for this test: ``--dovecote-url`` (or
    ``$DOVECOTE_TEST_URL``), else a ``memory://`` broker of the test's own."""
    return _configured_url(request.config) or f"memory://dovecote-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dovecote_transport(dovecote_url: str) -> Iterator[Transport]:
    """A transport on ``dovecote_url``, cleaned up after the test; then the
    queues it declared that were not there before are deleted from the broker
    (through a transport of their own, once the test's transport has closed
    its listeners: a server the test left running does not declare them again)."""
    transport = get_transport(dovecote_url)
    try:
        declared = DeclaredQueues(transport)
        yield transport
    finally:
        transport.cleanup()
    if not declared.names:
        return
    cleaner = get_transport(dovecote_url)
    try:
        failed = declared.delete(cleaner)
    finally:
        cleaner.cleanup()
    if failed:
        warnings.warn(pytest.PytestWarning(
            f"dovecote_transport could not delete {len(failed)} queue(s) it declared on "
            f"{transport.url}: {'; '.join(failed)}"), stacklevel=1)


@pytest.fixture
def dovecote_topic(dovecote_transport: Transport) -> Iterator[str]:
    """A topic no other test uses (``test_<12 hex digits>``); after the test its
    queues are deleted from ``dovecote_transport``'s broker."""
    topic = unique_topic()
    yield topic
    forget_topic(dovecote_transport, topic)


@pytest.fixture
def dovecote_notifications() -> Iterator[SentNotifications]:
    """What notifiers with the ``test`` driver sent during the test."""
    sent = SentNotifications()
    sent.clear()
    yield sent
    sent.clear()
