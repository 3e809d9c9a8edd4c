"""Shared fixtures: one transport fixture runs the behaviour suite on every transport.

Adding a transport is one line in ``TRANSPORTS``. Broker transports share one
session-wide RabbitMQ that ``scripts/ensure-rabbitmq.sh`` starts when none answers,
``kombu+redis://`` one session-wide Redis that ``scripts/ensure-redis.sh`` starts;
with ``CI=true`` a broker that cannot be started fails the tests instead of
skipping them.

The suite runs in parallel (pytest-xdist, ``--dist loadgroup``, as
``scripts/test.sh`` runs it): each worker is a process of its own, sharing the
broker and Redis with the others. What would disturb another test is kept to a
worker's own: the ``drop_vhost`` (one per worker process), the ``own_node``
RabbitMQ node (one per worker that needs one; its tests share the xdist group
``own_node``, so one worker runs them and one node is started), and the
3-node cluster (its tests share the group ``cluster``, and each holds the
cluster's lock while it runs, so no two ever stop its nodes at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import pathlib
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from hypothesis import settings

import dovecote

# A suite started in the background of a non-interactive shell (``cmd &``) inherits
# SIGINT ignored, and so would every process it starts: Python then never raises
# KeyboardInterrupt, and the tests of what Ctrl+C does (which send SIGINT to a
# child process) would time out. Each test process takes Python's own handler
# back, so the children it starts begin with SIGINT's default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# No example database on disk: a failing example is printed (with its blob) instead.
# oslo.messaging's functional suite runs in a process of its own (its conftest
# hides the real oslo.messaging): tests/interop/test_oslo_functional_suite.py.
collect_ignore = ["oslo_functional"]

settings.register_profile("dovecote", database=None)
settings.load_profile("dovecote")

# oslo.messaging's queue manager names queues after this process group's leader and
# reads its /proc entry: a test session started by a shell that has since exited
# (a background job, say) would fail its interop tests. Lead a group of our own then.
if not pathlib.Path(f"/proc/{os.getpgrp()}").exists():
    os.setpgid(0, 0)

ROOT = pathlib.Path(__file__).resolve().parent.parent
RABBIT_URL = os.environ.get("DOVECOTE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
AMQP1_URL = os.environ.get("DOVECOTE_TEST_AMQP1_URL", "amqp1://guest:guest@127.0.0.1:5672/")
#: The private CA and certificates scripts/ensure-rabbitmq.sh makes for its TLS listener.
TLS_DIR = pathlib.Path(os.environ.get("DOVECOTE_TEST_TLS_DIR", "/etc/rabbitmq/dovecote-tls"))
CA_FILE = TLS_DIR / "ca.pem"
RABBIT_TLS_URL = f"rabbit://guest:guest@127.0.0.1:5671/?ssl=true&ssl_ca_file={CA_FILE}"
AMQP1_TLS_URL = f"amqps://guest:guest@127.0.0.1:5671/?ssl_ca_file={CA_FILE}"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = os.environ.get("DOVECOTE_TEST_REDIS_URL", f"kombu+redis://{REDIS_HOST}:{REDIS_PORT}/0")

# name -> (URL template, the session fixture that starts its broker, or None)
TRANSPORTS: dict[str, tuple[str, str | None]] = {
    "memory": ("memory://{unique}", None),
    "rabbit": (RABBIT_URL, "rabbitmq"),
    "amqp1": (AMQP1_URL, "rabbitmq"),
    "rabbit-tls": (RABBIT_TLS_URL, "rabbitmq"),
    "amqp1-tls": (AMQP1_TLS_URL, "rabbitmq"),
    "redis": (REDIS_URL, "redis"),
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


def _redis_answers() -> bool:
    """Whether the test Redis answers ``PING`` with ``PONG`` (a bare socket
    exchange: the tests need no client library to find out)."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _ensure(script: str, answers: Callable[[], bool], what: str) -> None:
    """Run ``scripts/<script>`` when ``answers()`` is false; if the service still
    does not answer, fail the test with ``CI=true``, else skip it."""
    if answers():
        return
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / script)],
        capture_output=True, text=True, check=False, timeout=900,
    )
    if result.returncode != 0 or not answers():
        why = f"{what} could not be started:\n{result.stdout}\n{result.stderr}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The session-wide RabbitMQ: started (and installed) when none answers."""
    _ensure("ensure-rabbitmq.sh", _broker_answers, "RabbitMQ")
    return RABBIT_URL


@pytest.fixture(scope="session")
def redis() -> str:
    """The session-wide Redis for ``kombu+redis://``: started (and installed)
    when none answers on 127.0.0.1:6379."""
    _ensure("ensure-redis.sh", _redis_answers, "Redis")
    return REDIS_URL


@pytest.fixture
def unique() -> str:
    """A fresh name, so tests never share queues."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=list(TRANSPORTS))
def transport_url(request: pytest.FixtureRequest, unique: str) -> str:
    """The URL of each transport in turn."""
    template, broker = TRANSPORTS[request.param]
    if broker is not None:
        request.getfixturevalue(broker)
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


#: A vhost of this test process's own (one per xdist worker, and per test session
#: running at once: the pid is in its name), so dropping its connections
#: (``close_all_connections --vhost``) disturbs no test in another worker.
DROP_VHOST = f"dovecote_drops_{os.getpid()}"


def rabbitmqctl(*args: str, timeout: float = 60) -> None:
    """Run ``rabbitmqctl`` (a failure raises)."""
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def drop_vhost(rabbitmq: str) -> Iterator[str]:
    """The vhost whose connections fault tests drop (``close_all_connections
    --vhost``): this process's own, created on first use and deleted (with its
    queues) at the end of the session."""
    subprocess.run(["rabbitmqctl", "add_vhost", DROP_VHOST], capture_output=True, check=False,
                   timeout=60)
    rabbitmqctl("set_permissions", "-p", DROP_VHOST, "guest", ".*", ".*", ".*")
    yield DROP_VHOST
    subprocess.run(["rabbitmqctl", "delete_vhost", DROP_VHOST], capture_output=True,
                   check=False, timeout=60)


#: The 3-node cluster of scripts/rabbitmq-cluster.sh: node name -> AMQP port.
CLUSTER_NODES = {
    "dovecote-c1@localhost": 5701,
    "dovecote-c2@localhost": 5702,
    "dovecote-c3@localhost": 5703,
}
CLUSTER_URL = "rabbit://" + ",".join(
    f"guest:guest@127.0.0.1:{port}" for port in CLUSTER_NODES.values()) + "/"


CLUSTER_DIR = pathlib.Path(os.environ.get("DOVECOTE_CLUSTER_DIR",
                                          "/var/lib/rabbitmq/dovecote-cluster"))
#: One file per test session using the cluster (named by its pid), and the mark a
#: test session left when it started the cluster (a cluster started by hand is
#: never stopped by the tests).
CLUSTER_USERS = CLUSTER_DIR.with_name(CLUSTER_DIR.name + ".users")
CLUSTER_STARTED_BY_TESTS = CLUSTER_USERS / "started-by-tests"


def _cluster_script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq-cluster.sh"), command],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "DOVECOTE_CLUSTER_LOCKED": "1"})


@contextlib.contextmanager
def _flock(path: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (other processes wait for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _cluster_lock() -> contextlib.AbstractContextManager[None]:
    """The script's lock: test sessions (and xdist workers) running at once
    start and stop the cluster one at a time."""
    return _flock(CLUSTER_DIR.with_name(CLUSTER_DIR.name + ".lock"))


def _other_cluster_users() -> list[int]:
    """Live test processes other than this one using the cluster (stale files
    go). Each xdist worker is a process of its own, registered by its pid: the
    cluster is stopped by the last of them to finish."""
    users = []
    for path in CLUSTER_USERS.glob("[0-9]*"):
        pid = int(path.name)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            continue
        if pid != os.getpid():
            users.append(pid)
    return users


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[str]:
    """The URL of the 3-node cluster (``CLUSTER_NODES``): started through
    scripts/rabbitmq-cluster.sh when it does not answer, and stopped at the end
    of the session if the tests started it and no other test session still
    uses it. With ``CI=true`` a cluster that cannot be started fails the
    tests; elsewhere they skip."""
    me = CLUSTER_USERS / str(os.getpid())
    with _cluster_lock():
        CLUSTER_USERS.mkdir(parents=True, exist_ok=True)
        me.touch()
        if _cluster_script("status").returncode != 0:
            CLUSTER_STARTED_BY_TESTS.touch()
            result = _cluster_script("start")
            if result.returncode != 0:
                why = (f"the RabbitMQ cluster could not be started:\n{result.stdout}\n"
                       f"{result.stderr}")
                me.unlink(missing_ok=True)
                if not _other_cluster_users():
                    _cluster_script("stop")
                if os.environ.get("CI") == "true":
                    pytest.fail(why)
                pytest.skip(why)
    yield CLUSTER_URL
    with _cluster_lock():
        me.unlink(missing_ok=True)
        if CLUSTER_STARTED_BY_TESTS.exists() and not _other_cluster_users():
            _cluster_script("stop")
            CLUSTER_STARTED_BY_TESTS.unlink(missing_ok=True)


#: Where scripts/rabbitmq-node.sh keeps the nodes of the tests' own, and their slots.
NODES_DIR = pathlib.Path(os.environ.get("DOVECOTE_NODES_DIR", "/var/lib/rabbitmq/dovecote-nodes"))
#: Node ``faults-N`` listens on ``NODE_BASE_PORT + N``: one slot per test session
#: (or xdist worker) running at once.
NODE_BASE_PORT, NODE_SLOTS = 5720, 16


@dataclasses.dataclass(frozen=True)
class OwnNode:
    """A RabbitMQ node a test session has to itself (scripts/rabbitmq-node.sh):
    stopping its app, raising an alarm on it or dropping all its connections
    disturbs no other test."""

    name: str  #: the Erlang node name, for ``rabbitmqctl -n``
    port: int

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    @property
    def amqp1_url(self) -> str:
        return f"amqp1://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 60) -> None:
        """``rabbitmqctl -n NODE ARGS`` (a failure raises)."""
        rabbitmqctl("-n", self.name, *args, timeout=timeout)

    def back(self) -> None:
        """Start the node's app (a no-op when it runs), clear any memory alarm,
        and wait until it serves."""
        self.ctl("start_app")
        self.ctl("set_vm_memory_high_watermark", "absolute", "1GB")
        self.ctl("await_startup", "--timeout", "60", timeout=90)


def _node_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq-node.sh"), *args],
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="session")
def own_node(rabbitmq: str) -> Iterator[OwnNode]:
    """A RabbitMQ node of this test session's own (``faults-N`` in the first free
    slot), started for it and stopped after it. With ``CI=true`` a node that
    cannot be started fails the tests; elsewhere they skip."""
    NODES_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for slot in range(NODE_SLOTS):
            lock = stack.enter_context((NODES_DIR / f"slot-{slot}.lock").open("a"))
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            break
        else:
            pytest.fail(f"all {NODE_SLOTS} slots for RabbitMQ nodes of the tests' own are taken")
        node = OwnNode(f"dovecote-faults-{slot}@localhost", NODE_BASE_PORT + slot)
        result = _node_script("start", f"faults-{slot}", str(node.port))
        if result.returncode != 0:
            why = f"a RabbitMQ node could not be started:\n{result.stdout}\n{result.stderr}"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)
        try:
            yield node
        finally:
            _node_script("stop", f"faults-{slot}")


@pytest.fixture
def node_back(own_node: OwnNode) -> Iterator[OwnNode]:
    """``own_node``; after the test its app runs again with no alarm."""
    yield own_node
    own_node.back()


def cluster_node_back(node: str) -> None:
    """Start ``node``'s app (a no-op when it runs) and wait until it serves."""
    rabbitmqctl("-n", node, "start_app")
    rabbitmqctl("-n", node, "await_startup", "--timeout", "60", timeout=90)


@pytest.fixture
def cluster_nodes_back(rabbit_cluster: str) -> Iterator[dict[str, int]]:
    """``CLUSTER_NODES``, to this test alone: it holds the cluster's fault lock
    while it runs (a test in another xdist worker or test session waits), and
    after it every node's app runs again, so a node one test stopped is never
    missing in the next."""
    with _flock(CLUSTER_DIR.with_name(CLUSTER_DIR.name + ".faults.lock")):
        try:
            yield CLUSTER_NODES
        finally:
            for node in CLUSTER_NODES:
                cluster_node_back(node)


#: xdist groups (``--dist loadgroup``): the tests that use one of these fixtures run
#: in one worker, one after the other: one ``own_node`` is started for them all,
#: and the cluster's nodes are stopped by one test at a time.
XDIST_GROUPS = {
    "own_node": "own_node",
    "rabbit_cluster": "cluster",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test that uses a fixture of ``XDIST_GROUPS`` in its group (a test
    marked ``xdist_group`` already keeps its mark)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        used = getattr(item, "fixturenames", ())
        for fixture, group in XDIST_GROUPS.items():
            if fixture in used:
                item.add_marker(pytest.mark.xdist_group(group))
                break


@pytest.fixture
def actors() -> Iterator[list[pykka.ActorRef[Any]]]:
    """Endpoint actors a test starts; stopped afterwards."""
    refs: list[pykka.ActorRef[Any]] = []
    yield refs
    for ref in refs:
        ref.stop(block=False)
