"""Shared fixtures: one transport fixture runs the behaviour suite on every transport.

Adding a transport is one line in ``TRANSPORTS``. Broker transports share one
session-wide RabbitMQ that ``scripts/ensure-rabbitmq.sh`` starts when none answers;
with ``CI=true`` a broker that cannot be started fails the tests instead of
skipping them.
"""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

import dovecote

# No example database on disk: a failing example is printed (with its blob) instead.
settings.register_profile("dovecote", database=None)
settings.load_profile("dovecote")

ROOT = pathlib.Path(__file__).resolve().parent.parent
RABBIT_URL = os.environ.get("DOVECOTE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
AMQP1_URL = os.environ.get("DOVECOTE_TEST_AMQP1_URL", "amqp1://guest:guest@127.0.0.1:5672/")
#: The private CA and certificates scripts/ensure-rabbitmq.sh makes for its TLS listener.
TLS_DIR = pathlib.Path(os.environ.get("DOVECOTE_TEST_TLS_DIR", "/etc/rabbitmq/dovecote-tls"))
CA_FILE = TLS_DIR / "ca.pem"
RABBIT_TLS_URL = f"rabbit://guest:guest@127.0.0.1:5671/?ssl=true&ssl_ca_file={CA_FILE}"
AMQP1_TLS_URL = f"amqps://guest:guest@127.0.0.1:5671/?ssl_ca_file={CA_FILE}"

# name -> (URL factory, needs the broker)
TRANSPORTS: dict[str, tuple[str, bool]] = {
    "memory": ("memory://{unique}", False),
    "rabbit": (RABBIT_URL, True),
    "amqp1": (AMQP1_URL, True),
    "rabbit-tls": (RABBIT_TLS_URL, True),
    "amqp1-tls": (AMQP1_TLS_URL, True),
}


def _broker_answers() -> bool:
    """Whether the test broker answers, plain and TLS."""
    for port in (5672, 5671):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The session-wide RabbitMQ: started (and installed) when none answers."""
    if not _broker_answers():
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure-rabbitmq.sh")],
            capture_output=True, text=True, check=False, timeout=900,
        )
        if result.returncode != 0 or not _broker_answers():
            why = f"RabbitMQ could not be started:\n{result.stdout}\n{result.stderr}"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)
    return RABBIT_URL


@pytest.fixture
def unique() -> str:
    """A fresh name, so tests never share queues."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=list(TRANSPORTS))
def transport_url(request: pytest.FixtureRequest, unique: str) -> str:
    """The URL of each transport in turn."""
    template, needs_broker = TRANSPORTS[request.param]
    if needs_broker:
        request.getfixturevalue("rabbitmq")
    return template.format(unique=unique)


@pytest.fixture
def transport(transport_url: str) -> Iterator[dovecote.Transport]:
    """A transport on each transport in turn, cleaned up after the test."""
    transport = dovecote.get_transport(transport_url)
    yield transport
    transport.cleanup()


@pytest.fixture
def rabbit_transport(rabbitmq: str) -> Iterator[dovecote.Transport]:
    """A ``rabbit://`` transport to the session's broker, cleaned up after the test."""
    transport = dovecote.get_transport(rabbitmq)
    yield transport
    transport.cleanup()


@pytest.fixture
def topic(unique: str) -> str:
    """A topic no other test uses."""
    return f"test_{unique}"


@pytest.fixture
def forget_queues(request: pytest.FixtureRequest, topic: str) -> Iterator[None]:
    """Topic queues outlive a test on RabbitMQ: delete the test's own after it
    (``topic`` and ``topic.s1``, on its transport, or none on ``memory://``)."""
    from _rpc_support import delete_queues

    url = (request.getfixturevalue("transport_url")
           if "transport_url" in request.fixturenames else "memory://")
    yield
    delete_queues(url, topic, f"{topic}.s1")


@pytest.fixture
def no_deaths(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if a thread died of an exception (``threading.excepthook``)
    or pykka reported an actor that crashed."""
    died: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        died.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    caplog.set_level(logging.ERROR, logger="pykka")
    yield
    crashes = [record.getMessage() for record in caplog.records
               if record.name.startswith("pykka") and record.levelno >= logging.ERROR]
    assert not died, f"threads died: {died}"
    assert not crashes, f"pykka actors crashed: {crashes}"


#: A vhost of the tests' own, so dropping its connections disturbs no other test.
DROP_VHOST = "dovecote_drops"


def rabbitmqctl(*args: str, timeout: float = 60) -> None:
    """Run ``rabbitmqctl`` (a failure raises)."""
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def drop_vhost(rabbitmq: str) -> str:
    """The vhost whose connections fault tests drop (``close_all_connections --vhost``)."""
    subprocess.run(["rabbitmqctl", "add_vhost", DROP_VHOST], capture_output=True, check=False,
                   timeout=60)
    rabbitmqctl("set_permissions", "-p", DROP_VHOST, "guest", ".*", ".*", ".*")
    return DROP_VHOST


def broker_back() -> None:
    """Start the broker's app (a no-op when it runs) and wait until it serves."""
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
