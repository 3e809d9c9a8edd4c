"""Malformed requests injected straight into each transport's broker (memory
broker ``put``, a raw kombu publish, a raw Proton send): a call gets a failure
reply with a clear message wherever its reply queue can be read, every one is
logged, and the server goes on serving the next good call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from _rpc_support import PATIENCE, delete_queues, envelope, inject, raw_call, serve

import dovecote
from dovecote import Target, _wire

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _forget_queues(transport_url: str, topic: str) -> Iterator[None]:
    yield
    delete_queues(transport_url, topic, f"{topic}.s1")


class Api:
    target = Target(version="1.4")

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value


#: (case id, request without ids, exception class the caller rebuilds, words the error
#: must contain). A request dovecote cannot even route is answered as a ``ValueError``,
#: which the caller rebuilds as its own (a ``builtins`` exception).
ANSWERED: list[tuple[str, dict[str, Any], type[Exception], list[str]]] = [
    ("no method", {"args": {"value": 1}}, ValueError, ["no method"]),
    ("empty method", {"method": "", "args": {}}, ValueError, ["no method"]),
    ("method not a string", {"method": 42, "args": {}}, ValueError, ["no method"]),
    ("args not a mapping", {"method": "echo", "args": [1, 2]}, ValueError,
     ["'args'", "list", "not an object"]),
    ("unknown method", {"method": "nope", "args": {}}, dovecote.NoSuchMethod, ["nope"]),
    ("incompatible version", {"method": "echo", "args": {"value": 1}, "version": "2.0"},
     dovecote.UnsupportedVersion, ["2.0"]),
    ("newer minor version", {"method": "echo", "args": {"value": 1}, "version": "1.5"},
     dovecote.UnsupportedVersion, ["1.5"]),
    ("version not major.minor", {"method": "echo", "args": {"value": 1}, "version": "one"},
     ValueError, ["'one'", "major.minor"]),
    ("unknown namespace", {"method": "echo", "args": {"value": 1}, "namespace": "x"},
     dovecote.UnsupportedVersion, ["echo"]),
    ("wrong argument names", {"method": "echo", "args": {"valeu": 1}}, TypeError,
     ["wrong arguments", "'echo'", "unexpected 'valeu'", "missing 'value'"]),
    ("unexpected argument", {"method": "echo", "args": {"value": 1, "extra": 2}}, TypeError,
     ["wrong arguments", "'echo'", "'extra'"]),
    ("missing argument", {"method": "echo", "args": {}}, TypeError,
     ["wrong arguments", "value"]),
]


def _good_call_still_works(transport: dovecote.Transport, topic: str) -> None:
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    assert client.call({}, "echo", value="next") == "next"


@pytest.mark.parametrize(("request_", "error", "words"),
                         [case[1:] for case in ANSWERED], ids=[case[0] for case in ANSWERED])
def test_bad_call_gets_a_failure_reply_and_is_logged(
    transport: dovecote.Transport, topic: str, request_: dict[str, Any],
    error: type[Exception], words: list[str],
) -> None:
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        reply = raw_call(transport, topic, {**request_, "_context_user": "mallory"})
        assert reply["ending"] is True
        assert reply["result"] is None
        assert reply["failure"], reply
        failure = json.loads(reply["failure"])
        for word in words:
            assert word in failure["message"], failure
        rebuilt = _wire.deserialize_failure(reply["failure"], ())
        assert isinstance(rebuilt, error), rebuilt
        _good_call_still_works(transport, topic)
    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    assert len(failed) == 1, failed
    assert failed[0]["outcome"] in {"rejected", "error"}
    for word in words:
        assert word in failed[0]["error"], failed[0]


#: Bodies whose reply queue cannot be read: logged, and the queue keeps moving.
UNANSWERABLE: list[tuple[str, str | bytes, str]] = [
    ("not JSON", b"{this is not json", "not JSON"),
    ("not UTF-8", b"\xff\xfe\x00\x01", "UTF-8"),
    ("JSON list", "[1, 2, 3]", "not an object"),
    ("JSON string", '"method"', "not an object"),
    ("envelope around a list", json.dumps({"oslo.version": "2.0", "oslo.message": "[1]"}),
     "not an object"),
    ("envelope around bad JSON", json.dumps({"oslo.version": "2.0", "oslo.message": "{x"}),
     "not JSON"),
    ("envelope without a message", json.dumps({"oslo.version": "2.0"}), "missing"),
    ("wrong oslo.version", json.dumps({
        "oslo.version": "9.9",
        "oslo.message": json.dumps({"method": "echo", "args": {"value": 1}}),
    }), "9.9"),
]


@pytest.mark.parametrize(("body", "reason"), [case[1:] for case in UNANSWERABLE],
                         ids=[case[0] for case in UNANSWERABLE])
def test_undecodable_body_is_logged_and_the_server_goes_on(
    transport: dovecote.Transport, topic: str, body: str | bytes, reason: str
) -> None:
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]) as server:
        inject(transport, topic, body)
        _good_call_still_works(transport, topic)
        _good_call_still_works(transport, topic)
        assert all(r["alive"] for r in server.actors())
    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    assert len(failed) == 1, failed
    assert failed[0]["outcome"] == "malformed"
    assert reason in failed[0]["error"], failed[0]
    ok = [e for e in logs if e["event"] == "dispatch.ok"]
    assert len(ok) == 2


def test_a_call_with_a_wrong_envelope_version_is_still_answered(
    transport: dovecote.Transport, topic: str
) -> None:
    """The reply queue and id sit inside the envelope: a call whose envelope has
    the wrong ``oslo.version`` is refused, and its caller is told why."""
    inner = json.dumps({"method": "echo", "args": {"value": 1}, "_msg_id": "{msg_id}",
                        "_reply_q": "{reply_q}"})
    body = json.dumps({"oslo.version": "9.9", "oslo.message": inner})
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        reply = raw_call(transport, topic, None, body=body)
        _good_call_still_works(transport, topic)
    failure = json.loads(reply["failure"])
    assert "9.9" in failure["message"], failure
    assert isinstance(_wire.deserialize_failure(reply["failure"], ()), ValueError)
    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    assert [e["outcome"] for e in failed] == ["malformed"]


def test_a_burst_of_bad_input_never_blocks_the_queue(
    transport: dovecote.Transport, topic: str
) -> None:
    """Bad bodies and good calls interleaved: every good call is answered."""
    with serve(transport, Target(topic=topic, server="s1"), [Api()], max_in_flight=4):
        for _, body, _ in UNANSWERABLE:
            inject(transport, topic, body)
        for _, request, _, _ in ANSWERED:
            inject(transport, topic, envelope(request))  # as casts: nobody waits
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        futures = [client.call_async({}, "echo", value=n) for n in range(10)]
        assert [f.get(timeout=PATIENCE) for f in futures] == list(range(10))
        reply = raw_call(transport, topic, {"method": "echo", "args": {"value": "raw"}})
        assert reply["result"] == "raw"
        assert reply["failure"] is None


def test_an_oversized_call_is_refused_and_answered(
    transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body over ``MAX_BODY_SIZE`` is never dispatched; its caller is told why."""
    monkeypatch.setattr(_wire, "MAX_BODY_SIZE", 4096)
    calls: list[Any] = []

    class Recorder(Api):
        def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
            calls.append(len(str(value)))
            return value

    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Recorder()]):
        reply = raw_call(transport, topic, {"method": "echo", "args": {"value": "x" * 8192}})
        assert "over the 4096-byte limit" in json.loads(reply["failure"])["message"]
        _good_call_still_works(transport, topic)
    assert calls == [4]  # only the good call ran
    assert [e["outcome"] for e in logs if e["event"] == "dispatch.failed"] == ["malformed"]
