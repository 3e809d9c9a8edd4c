"""Endpoint actors (pykka actors given as endpoints) report what they ran:
``handled`` and ``failed`` in ``server.actors()`` records, and in the table
and the JSON of ``dovecote actors`` (a subprocess, against RabbitMQ)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pykka
import pytest
from _rpc_support import PATIENCE, Recorder, delete_queues, running

import dovecote
from dovecote import Target

pytestmark = pytest.mark.timeout(60)


class Stock(pykka.ThreadingActor):
    """Answers calls and notifications; fails on request."""

    def __init__(self, seen: Recorder) -> None:
        super().__init__()
        self.seen = seen

    def take(self, ctxt: dict[str, Any], item: str) -> str:
        if item == "none":
            raise LookupError("no such item")
        return item

    def info(self, ctxt: Any, publisher_id: Any, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.seen.add(payload)
        if payload == "bad":
            raise ValueError("bad payload")


def endpoint_record(server: Any, ref: pykka.ActorRef[Any]) -> dict[str, Any]:
    (record,) = [r for r in server.actors() if r["kind"] == "endpoint"]
    assert record["urn"] == ref.actor_urn
    return record


def test_an_endpoint_actor_counts_what_it_handled_and_what_failed(topic: str) -> None:
    transport = dovecote.get_transport(f"memory://{topic}")
    seen = Recorder()
    ref = Stock.start(seen)
    try:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [ref])
        listener = dovecote.get_notification_listener(
            transport, [Target(topic=topic)], [ref])  # the same actor serves both
        with running(server), running(listener):
            assert endpoint_record(server, ref)["handled"] == 0
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            assert [client.call({}, "take", item=i) for i in ("a", "b")] == ["a", "b"]
            with pytest.raises(LookupError):
                client.call({}, "take", item="none")
            record = endpoint_record(server, ref)
            assert (record["handled"], record["failed"]) == (2, 1)
            notifier = dovecote.Notifier(transport, "p", topics=[topic])
            notifier.info({}, "e", "fine")
            notifier.info({}, "e", "bad")  # raised: parked (no requeue), counted as failed
            seen.wait_for(2)
            for owner in (server, listener):  # what the actor ran, for any server
                record = endpoint_record(owner, ref)
                assert (record["handled"], record["failed"]) == (3, 2)
                assert record["alive"] is True
    finally:
        ref.stop()
        transport.cleanup()


def dovecote_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dovecote.cli._main", *args],
                          capture_output=True, text=True, timeout=40, check=False)


@pytest.mark.broker
def test_dovecote_actors_shows_an_endpoint_actors_counts(rabbitmq: str, topic: str) -> None:
    transport = dovecote.get_transport(rabbitmq)
    ref = Stock.start(Recorder())
    try:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [ref])
        with running(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            for item in ("a", "b", "c"):
                client.call({}, "take", item=item)
            with pytest.raises(LookupError):
                client.call({}, "take", item="none")
            done = dovecote_cli("actors", rabbitmq, topic, "--server", "s1", "--json")
            assert done.returncode == 0, done.stderr
            (record,) = [r for r in json.loads(done.stdout) if r["kind"] == "endpoint"]
            assert (record["actor"], record["handled"], record["failed"]) == ("Stock", 3, 1)
            table = dovecote_cli("actors", rabbitmq, topic, "--server", "s1")
            assert table.returncode == 0, table.stderr
            header, *rows = table.stdout.splitlines()[1:]
            columns = header.split()
            (row,) = [line.split() for line in rows if line.split()[0] == "endpoint"]
            assert (row[columns.index("HANDLED")], row[columns.index("FAILED")]) == ("3", "1")
    finally:
        ref.stop()
        delete_queues(transport, topic, f"{topic}.s1")
        transport.cleanup()
