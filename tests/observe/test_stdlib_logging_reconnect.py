"""A lost connection is a WARNING, and so is its end: on RabbitMQ, an
application that logs at WARNING sees ``listener.connection_lost`` and
``listener.reconnected`` with how long the listener was down (``down_for``),
and the same for the reply consumer. In a fresh interpreter (its own logging
set-up), which closes its own connections at the broker (``rabbitmqctl``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from _rpc_support import delete_queues

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

APP = """
import logging, os, subprocess, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                    format="%(levelname)s %(name)s %(message)s")
import dovecote
from dovecote import Target

def close_my_connections():
    listing = subprocess.run(["rabbitmqctl", "list_connections", "-q", "pid",
                              "client_properties"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    mine = f'"dovecote:{os.getpid()}:'
    pids = [line.split("\\t", 1)[0] for line in listing.splitlines() if mine in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test"], capture_output=True,
                       check=True, timeout=30)
    return len(pids)

class Api:
    def echo(self, ctxt, value):
        return value

url, topic = sys.argv[1], sys.argv[2]
transport = dovecote.get_transport(
    url + "?rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&rabbit_interval_max=1")
server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()])
server.start()
client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=30)
assert client.call({}, "echo", value="before") == "before"
assert close_my_connections() >= 3  # the listener, the reply consumer, the publisher
# answered once the listener and the reply consumer are back
assert client.call({}, "echo", value="after") == "after"
server.stop()
assert server.wait(10)
transport.cleanup()
"""


def test_a_lost_connection_and_its_recovery_are_both_warnings(rabbitmq: str, topic: str) -> None:
    try:
        done = subprocess.run([sys.executable, "-c", APP, rabbitmq, topic], capture_output=True,
                              text=True, timeout=100, check=False)
    finally:
        delete_queues(rabbitmq, topic, f"{topic}.s1")
    assert done.returncode == 0, done.stdout + done.stderr
    after = done.stdout  # nothing at WARNING before the connections were closed
    for consumer in ("listener", "reply"):
        lost = re.search(rf"^WARNING dovecote\.drivers\.kombu\.\w+ {consumer}\.connection_lost ",
                         after, re.MULTILINE)
        back = re.search(rf"^WARNING dovecote\.drivers\.kombu\.\w+ {consumer}\.reconnected "
                         r".*\bdown_for=(\d+\.?\d*)", after, re.MULTILINE)
        assert lost, done.stdout
        assert back, done.stdout
        assert lost.start() < back.start()
        assert 0 <= float(back[1]) < 30
    # the attempts in between are INFO: not shown at WARNING
    assert "listener.reconnecting" not in done.stdout
