"""One server listening on rabbit:// and amqp1:// at once, the same endpoints answering both."""

from __future__ import annotations

import threading

import pytest

import dovecote
from tests.conftest import AMQP1_URL


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.cast_seen = threading.Event()

    def hello(self, ctxt: dict, name: str) -> str:
        self.calls.append(name)
        return f"hello {name} from {ctxt.get('via')}"

    def poke(self, ctxt: dict) -> None:
        self.cast_seen.set()


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_one_server_answers_rabbit_and_amqp1(rabbitmq: str, unique: str, executor: str) -> None:
    rabbit = dovecote.get_transport(rabbitmq)
    amqp1 = dovecote.get_transport(AMQP1_URL)
    endpoint = Recorder()
    server = dovecote.get_rpc_server(
        rabbit, dovecote.Target(topic=f"mixed_rabbit_{unique}"), [endpoint], executor=executor
    )
    server.listen(amqp1, dovecote.Target(topic=f"mixed_amqp1_{unique}"))
    runner = None
    if executor == "blocking":
        runner = threading.Thread(target=server.start)
        runner.start()
        assert server.wait_ready(10)
    else:
        server.start()
    try:
        listeners = [r for r in server.actors() if r["kind"] == "listener"]
        assert sorted(r["transport"].split(":")[0] for r in listeners) == ["amqp1", "rabbit"]
        via_rabbit = dovecote.get_rpc_client(
            rabbit, dovecote.Target(topic=f"mixed_rabbit_{unique}"), timeout=10)
        via_amqp1 = dovecote.get_rpc_client(
            amqp1, dovecote.Target(topic=f"mixed_amqp1_{unique}"), timeout=10)
        assert via_rabbit.call({"via": "rabbit"}, "hello", name="a") == "hello a from rabbit"
        assert via_amqp1.call({"via": "amqp1"}, "hello", name="b") == "hello b from amqp1"
        via_amqp1.cast({}, "poke")
        assert endpoint.cast_seen.wait(10)
        assert endpoint.calls == ["a", "b"]
    finally:
        server.stop()
        assert server.wait(15)
        if runner is not None:
            runner.join(15)
        rabbit.cleanup()
        amqp1.cleanup()
