"""The mechanisms issue 12 added for speed, each checked for what it must not
change: buffered reads hand py-amqp exactly the frames the peer sent, however
the bytes are cut; ids read ahead are still unique uuid4s, and a forked child
does not repeat its parent's; the envelope written in one pass, and JSON from
the encoder built once, are the same text as before, and the decoder's shortcut
parses (and refuses) as the json module does; the shared work queue
still counts every message a worker finished."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import uuid

import pytest
from _rpc_support import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import dovecote
from dovecote import _wire
from dovecote.drivers._buffered import BufferedTCPTransport, frame_ready


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _transport(sock: socket.socket) -> BufferedTCPTransport:
    """A buffered transport reading ``sock``, without connecting anywhere."""
    transport = BufferedTCPTransport.__new__(BufferedTCPTransport)
    transport.sock = sock
    transport.raise_on_initial_eintr = True
    transport._read_buffer = b""
    transport._quick_recv = sock.recv
    transport.connected = True
    return transport


frames = st.lists(
    st.tuples(st.sampled_from([1, 2, 3, 8]), st.integers(0, 65535), st.binary(max_size=3000)),
    min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(frames=frames, cuts=st.lists(st.integers(1, 5000), max_size=30))
def test_buffered_reads_return_the_frames_sent_however_the_bytes_are_cut(
        frames: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(_frame(*f) for f in frames)
    chunks, at = [], 0
    for cut in cuts:
        if at >= len(stream):
            break
        chunks.append(stream[at:at + cut])
        at += cut
    chunks.append(stream[at:])
    reader, writer = socket.socketpair()
    with reader, writer:
        transport = _transport(reader)

        def write() -> None:
            for chunk in chunks:
                if chunk:
                    writer.sendall(chunk)

        thread = threading.Thread(target=write)
        thread.start()
        got = []
        reader.settimeout(5)
        for _ in frames:
            kind, channel, payload = transport.read_frame()
            got.append((kind, channel, bytes(payload)))
        thread.join()
        assert got == [(k, c, p) for k, c, p in frames]
        assert transport._read_buffer == b""


def test_a_frame_cut_by_a_timeout_is_kept_for_the_next_read() -> None:
    frame = _frame(1, 7, b"x" * 100)
    reader, writer = socket.socketpair()
    with reader, writer:
        transport = _transport(reader)
        writer.sendall(frame[:50])
        reader.settimeout(0.05)
        assert not frame_ready(transport)
        with pytest.raises(TimeoutError):
            transport.read_frame()
        writer.sendall(frame[50:] + _frame(1, 8, b"y"))
        assert transport.read_frame() == (1, 7, b"x" * 100)
        assert frame_ready(transport)  # the second frame came in the same read
        assert transport.read_frame() == (1, 8, b"y")
        assert not frame_ready(transport)


def test_a_closed_peer_is_an_error_not_an_empty_frame() -> None:
    reader, writer = socket.socketpair()
    with reader:
        transport = _transport(reader)
        writer.sendall(_frame(1, 1, b"abc")[:5])
        writer.close()
        reader.settimeout(1)
        with pytest.raises(OSError, match="closed"):
            transport.read_frame()


def test_ids_are_unique_random_uuid4s() -> None:
    ids = [_wire.new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2_000]:
        parsed = uuid.UUID(text)
        assert parsed.hex == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    _wire.new_id()  # the parent has ids read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.close(read)
        os.write(write, json.dumps([_wire.new_id() for _ in range(50)]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    parent = [_wire.new_id() for _ in range(50)]
    assert not set(child) & set(parent)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(message=st.dictionaries(st.text(), json_values, max_size=6))
def test_the_envelope_written_in_one_pass_is_the_same_text(message: dict[str, object]) -> None:
    expected = _wire.dumps({"oslo.version": "2.0", "oslo.message": _wire.dumps(message)})
    assert _wire.encode_envelope(message) == expected
    assert json.loads(json.loads(expected)["oslo.message"]) == json.loads(_wire.dumps(message))


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_the_reused_encoder_writes_what_the_json_module_writes(value: object) -> None:
    expected = json.JSONEncoder(default=_wire._to_primitive, separators=(",", ":")).encode(value)
    assert _wire.dumps(value) == expected


def _outcome(parse: object, text: str) -> tuple[str, object]:
    try:
        return "value", parse(text)  # type: ignore[operator]
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(
    st.text(max_size=40),
    st.builds(lambda v, a, b: a + json.dumps(v) + b, json_values,
              st.sampled_from(["", " ", "\n"]), st.sampled_from(["", " ", "x", "}", "1"]))))
def test_the_scanner_shortcut_parses_as_the_json_module_does(text: str) -> None:
    assert _outcome(_wire.loads, text) == _outcome(json.JSONDecoder().decode, text)


def test_a_circular_value_is_still_named_as_such() -> None:
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular"):
        _wire.dumps({"args": looped})


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.expected = 0

    def tick(self, ctxt: object, fail: bool = False) -> None:
        with self.lock:
            self.count += 1
            if self.count == self.expected:
                self.done.set()
        if fail:
            raise ValueError("asked to fail")


def test_the_dispatcher_counts_what_its_workers_finished(unique: str) -> None:
    transport = dovecote.get_transport(f"memory://{unique}")
    endpoint = _Counter()
    endpoint.expected = 300
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic="t", server="s"), [endpoint], max_workers=4)
    server.start()
    try:
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic="t"))
        for i in range(300):
            client.cast({}, "tick", fail=i % 10 == 0)
        assert endpoint.done.wait(10)

        def finished() -> dict[str, int]:
            return next(a for a in server.actors() if a["kind"] == "dispatcher")

        assert wait_until(lambda: finished()["handled"] + finished()["failed"] == 300)
        dispatcher = finished()
        workers = [a for a in server.actors() if a["kind"] == "worker"]
        assert dispatcher["failed"] == 30
        assert sum(w["handled"] for w in workers) == dispatcher["handled"]
    finally:
        server.stop()
        server.wait(10)
        transport.cleanup()


def test_a_threading_server_hands_batches_to_its_workers_without_the_dispatchers_mailbox(
        unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message wakes two threads on its way to the endpoint (the
    listener's, a worker's): the listener runs the dispatcher's hand-off itself,
    so no batch goes through the dispatcher's mailbox; the dispatcher still
    counts and records every message, and the server still stops only once all
    are finished."""
    from dovecote.actors._dispatcher import DispatcherActor
    from dovecote.actors._messages import Batch

    mailbox: list[str] = []
    original = DispatcherActor.on_message

    def recording(self: DispatcherActor, message: object) -> object:
        mailbox.append(type(message).__name__)
        return original(self, message)

    monkeypatch.setattr(DispatcherActor, "on_message", recording)
    transport = dovecote.get_transport(f"memory://{unique}")
    endpoint = _Counter()
    endpoint.expected = 200
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic="t", server="s"), [endpoint], max_workers=4,
        event_history=1000)
    server.start()
    try:
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic="t"))
        for _ in range(199):
            client.cast({}, "tick")
        client.call({}, "tick")
        assert endpoint.done.wait(10)
        assert wait_until(lambda: next(
            a for a in server.actors() if a["kind"] == "dispatcher")["handled"] == 200)
        queued = [e for e in server.events(kind="dispatcher") if e["event"] == "message.queued"]
        assert sum(e["count"] for e in queued) == 200
    finally:
        server.stop()
        assert server.wait(10)
        transport.cleanup()
    assert Batch.__name__ not in mailbox, mailbox
    assert "ListenerDone" in mailbox  # the dispatcher still supervises its listeners


def test_a_listener_waiting_for_credit_is_let_in_for_a_batch_not_one_message() -> None:
    """With every credit taken, a listener waiting for more gets it once there
    is room for a batch (an eighth of the limit, or what it asked for if less),
    not one message at a time as each finishes (a wake-up and a poll per
    message); a wait that times out still takes what room there is."""
    from dovecote.actors._flow import CreditGate

    gate = CreditGate(512)
    assert gate.refill == 64
    assert gate.acquire(512, 0.0) == 512
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(100, 10.0)))
    waiter.start()
    assert wait_until(lambda: len(gate._waiting) == 1)
    gate.release(10)  # room for 10: not yet a batch
    gate.release(60)  # room for 70: the waiter takes up to what it asked, 70 here
    waiter.join(10)
    assert got == [70]
    assert gate.in_flight == 512
    gate.release(5)
    assert gate.acquire(100, 0.01) == 5  # timed out waiting for a batch: what there is
    small = CreditGate(3)
    assert small.refill == 1
    assert small.acquire(3, 0.0) == 3
    small.release(1)
    assert small.acquire(3, 0.0) == 1
