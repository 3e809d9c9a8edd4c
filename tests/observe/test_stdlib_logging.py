"""dovecote logs through the application's ``logging`` set-up: ``basicConfig``,
``dictConfig``, ``setLevel`` on ``dovecote``, ``logging.disable`` and oslo.log
all take effect, also for servers (and their actors' logs) made before the
set-up; an application that configured structlog gets structlog events; left
unconfigured, Python's last-resort handler writes WARNING and above to stderr.

Each case runs in a fresh interpreter: logging's set-up is process-wide."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

#: The application: ``{pre}`` runs before ``import dovecote``, ``{early}`` after
#: it (before any server), ``{setup}`` once both servers run and have answered a
#: call (their loggers and their actors' logs exist then), and ``{after}`` last.
APP = """
import json, logging, logging.config, sys
{pre}
import pykka
import dovecote
from dovecote import Target
{early}

class Api:
    target = Target(version="1.0")
    def echo(self, ctxt, value):
        return value
    def add(self, ctxt, a, b):
        return a + b
    def fail(self, ctxt):
        raise ValueError("it failed")

class Counter(pykka.ThreadingActor):
    def add(self, ctxt, a, b):
        return a + b
    def fail(self, ctxt):
        raise ValueError("actor failed")

transport = dovecote.get_transport("memory://stdlib-logging")
counter = Counter.start()
server = dovecote.get_rpc_server(transport, Target(topic="t", server="s"), [Api()], name="app")
actors = dovecote.get_rpc_server(transport, Target(topic="a", server="s"), [counter],
                                 name="actors")
server.start(); actors.start()
client = dovecote.get_rpc_client(transport, Target(topic="t"), timeout=5)
actor_client = dovecote.get_rpc_client(transport, Target(topic="a"), timeout=5)
assert client.call({{}}, "echo", value=0) == 0
assert actor_client.call({{}}, "add", a=1, b=1) == 2

def missing(name):
    try:
        client.call({{}}, name)
    except dovecote.NoSuchMethod:
        return
    raise AssertionError(name)

def traffic():
    \"\"\"One good call, two endpoint failures, four requests at fault.\"\"\"
    assert client.call({{}}, "echo", value=1) == 1
    for call in (lambda: client.call({{}}, "fail"), lambda: actor_client.call({{}}, "fail")):
        try:
            call()
        except ValueError:
            pass
        else:
            raise AssertionError("no failure")
    missing("nope")
    for target in (client, actor_client):
        try:
            target.call({{}}, "add", a=1, c=2)
        except TypeError:
            pass
        else:
            raise AssertionError("no TypeError")
    try:
        client.prepare(version="9.0").call({{}}, "echo", value=1)
    except dovecote.UnsupportedVersion:
        pass
    else:
        raise AssertionError("no UnsupportedVersion")

{setup}

server.stop(); actors.stop()
assert server.wait(5) and actors.wait(5)
counter.stop()
transport.cleanup()
{after}
"""


def run(*, pre: str = "", early: str = "", setup: str = "traffic()", after: str = "",
        args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    code = APP.format(pre=textwrap.dedent(pre), early=textwrap.dedent(early),
                      setup=textwrap.dedent(setup), after=textwrap.dedent(after))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    return done


#: A line a ``"%(levelname)s %(name)s %(message)s"`` format writes.
LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) (\S+)(?: (.*))?")


def lines(text: str) -> list[tuple[str, str, str, str]]:
    """(level, logger, event, fields) of each log line; traceback lines skipped."""
    return [(found[1], found[2], found[3], found[4] or "")
            for found in map(LINE.fullmatch, text.splitlines()) if found]


def test_unconfigured_warnings_and_errors_go_to_stderr_and_nothing_to_stdout() -> None:
    done = run()
    assert done.stdout == ""
    logged = done.stderr.splitlines()
    # the last-resort handler: the message alone, each failure's traceback after it
    events = [line for line in logged if line.startswith("dispatch.")]
    assert len(events) == 6, done.stderr
    assert all(line.startswith("dispatch.failed ") for line in events), done.stderr
    assert sum("outcome=error" in line for line in events) == 2
    assert sum("outcome=rejected" in line for line in events) == 4
    assert sum(line == "Traceback (most recent call last):" for line in logged) == 2
    for line in logged:  # nothing below WARNING: no lifecycle, no per-message lines
        assert not line.startswith(("server.", "listener.", "message.", "reply.sent")), line


def test_basic_config_after_the_servers_started_takes_effect() -> None:
    done = run(setup="""
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout,
                            format="%(levelname)s %(name)s %(message)s")
        traffic()
    """)
    assert done.stderr == ""
    logged = [line for line in lines(done.stdout) if line[1].startswith("dovecote")]
    seen = {(level, name, event) for level, name, event, _ in logged}
    # the actors' logs made before basicConfig follow it: debug lines now
    assert ("DEBUG", "dovecote.actors", "message.received") in seen
    assert ("DEBUG", "dovecote.actors", "message.queued") in seen
    assert ("DEBUG", "dovecote.rpc.server", "dispatch.started") in seen
    assert ("DEBUG", "dovecote.rpc.server", "dispatch.ok") in seen
    assert ("ERROR", "dovecote.rpc.server", "dispatch.failed") in seen
    assert ("WARNING", "dovecote.rpc.server", "dispatch.failed") in seen
    assert ("INFO", "dovecote.actors", "server.stopping") in seen
    assert {name for _, name, _, _ in logged} <= {
        "dovecote.actors", "dovecote.actors.server", "dovecote.rpc.server"}
    (ok,) = [fields for _, _, event, fields in logged
             if event == "dispatch.ok" and "method=echo" in fields and "value" not in fields]
    assert re.search(r"msg_id=[0-9a-f]{32} ", ok), ok  # fields rendered readably
    assert "outcome=ok" in ok
    assert "server=app" in ok  # the actor's identity


def test_dict_config_levels_per_module_take_effect() -> None:
    """``dovecote`` at INFO, ``dovecote.rpc`` at DEBUG: the RPC server's lines
    come at DEBUG, the actors' own at INFO only. ``disable_existing_loggers``
    (True by default) keeps dovecote's loggers, as ``dovecote`` is named."""
    done = run(setup="""
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
            "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                                 "stream": "ext://sys.stdout"}},
            "loggers": {"dovecote": {"level": "INFO"}, "dovecote.rpc": {"level": "DEBUG"}},
            "root": {"level": "WARNING", "handlers": ["out"]},
        })
        traffic()
    """)
    assert done.stderr == ""
    seen = {(level, name, event) for level, name, event, _ in lines(done.stdout)}
    assert ("DEBUG", "dovecote.rpc.server", "dispatch.ok") in seen
    assert ("ERROR", "dovecote.rpc.server", "dispatch.failed") in seen
    assert ("INFO", "dovecote.actors", "server.stopping") in seen
    assert not [entry for entry in seen if entry[1] == "dovecote.actors" and entry[0] == "DEBUG"]


def test_dict_config_between_import_and_servers_does_not_silence_dovecote() -> None:
    """dovecote's stdlib loggers are made when they first log, so a
    ``dictConfig`` after ``import dovecote`` that names only the root (and
    disables the loggers existing then, by default) still gets dovecote's lines."""
    done = run(early="""
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
            "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                                 "stream": "ext://sys.stdout"}},
            "root": {"level": "INFO", "handlers": ["out"]},
        })
    """)
    assert done.stderr == ""
    seen = {(level, name, event) for level, name, event, _ in lines(done.stdout)}
    assert ("INFO", "dovecote.actors.server", "server.started") in seen
    assert ("INFO", "dovecote.actors", "listener.started") in seen
    assert ("ERROR", "dovecote.rpc.server", "dispatch.failed") in seen
    assert not [entry for entry in seen if entry[0] == "DEBUG"]


def test_set_level_on_dovecote_silences_servers_made_before() -> None:
    done = run(setup="""
        missing("before")
        logging.getLogger("dovecote").setLevel(logging.CRITICAL)
        traffic()
        missing("silenced")
    """)
    assert done.stdout == ""
    logged = done.stderr.splitlines()
    assert len(logged) == 1, done.stderr  # the line before setLevel, and nothing after
    assert logged[0].startswith("dispatch.failed ")
    assert "method=before" in logged[0]


def test_logging_disable_and_enable_again() -> None:
    done = run(setup="""
        missing("before")
        logging.disable(logging.CRITICAL)
        traffic()
        missing("disabled")
        logging.disable(logging.NOTSET)
        missing("after")
    """)
    assert done.stdout == ""
    logged = done.stderr.splitlines()
    assert len(logged) == 2, done.stderr
    assert "method=before" in logged[0]
    assert "method=after" in logged[1]


def test_level_policy_caller_faults_are_one_warning_endpoint_errors_one_traceback() -> None:
    done = run(setup="""
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                            format="%(levelname)s %(name)s %(message)s")
        traffic()
    """)
    assert done.stderr == ""
    text = done.stdout.splitlines()
    blocks: list[list[str]] = []  # each log line with the lines that follow it
    for line in text:
        if LINE.fullmatch(line):
            blocks.append([line])
        else:
            assert blocks, line
            blocks[-1].append(line)
    faults = [block for block in blocks if "outcome=rejected" in block[0]]
    methods = sorted(re.search(r"method=(\S+)", block[0])[1] for block in faults)  # type: ignore[index]
    assert methods == ["add", "add", "echo", "nope"], done.stdout  # wrong arguments x2, version
    for block in faults:
        assert block[0].startswith("WARNING dovecote.rpc.server dispatch.failed "), block
        assert len(block) == 1, block  # one line, no traceback
    assert any("wrong arguments for RPC method 'add'" in block[0] for block in faults)
    failures = [block for block in blocks if "outcome=error" in block[0]]
    assert len(failures) == 2, done.stdout  # the plain endpoint and the actor
    for block in failures:
        assert block[0].startswith("ERROR dovecote.rpc.server dispatch.failed "), block
        assert block[1] == "Traceback (most recent call last):", block
        assert sum(line.startswith("Traceback") for line in block) == 1, block
        assert not any("above exception" in line or "During handling" in line
                       for line in block), block
        assert block[-1] in {"ValueError: it failed", "ValueError: actor failed"}, block
    assert len(blocks) == len(faults) + len(failures), done.stdout  # nothing else at WARNING


def test_records_carry_the_fields_as_attributes_and_rename_clashes() -> None:
    done = run(setup="""
        class Keep(logging.Handler):
            def __init__(self):
                super().__init__(logging.DEBUG)
                self.records = []
            def emit(self, record):
                self.records.append(record)
        keep = Keep()
        logging.getLogger("dovecote").addHandler(keep)
        logging.getLogger("dovecote").setLevel(logging.INFO)
        logging.getLogger("dovecote").propagate = False
        traffic()
        from dovecote.observe._logging import get_logger
        get_logger("dovecote.probe_test").warning(
            "test.clash", name="n", msg="m s", module="mod", message="x", asctime="t",
            args=[1], ok=1)
    """, after="""
        def seen(record):
            return {"name": record.name, "level": record.levelname, "event": record.event,
                    "message": record.getMessage(), "path": record.pathname,
                    "exc": record.exc_info is not None,
                    "fields": {key: repr(value) for key, value in vars(record).items()}}
        print(json.dumps([seen(record) for record in keep.records]))
    """)
    records = json.loads(done.stdout)
    failed = [r for r in records if r["event"] == "dispatch.failed"
              and r["fields"]["outcome"] == "'error'"]
    assert len(failed) == 2
    for record in failed:
        fields = record["fields"]
        assert re.fullmatch(r"'[0-9a-f]{32}'", fields["msg_id"]), fields
        assert fields["method"] == "'fail'"
        assert fields["outcome"] == "'error'"
        assert fields["server"] in {"'app'", "'actors'"}
        assert record["exc"] is True
        assert record["path"].endswith(str(Path("rpc", "_server.py"))), record["path"]
        assert record["message"].startswith("dispatch.failed msg_id=")
    (clash,) = [r for r in records if r["event"] == "test.clash"]
    assert clash["name"] == "dovecote.probe_test"
    assert clash["message"] == (
        "test.clash name=n msg='m s' module=mod message=x asctime=t args=[1] ok=1")
    fields = clash["fields"]
    assert fields["dovecote_name"] == "'n'"
    assert fields["dovecote_msg"] == "'m s'"
    assert fields["dovecote_module"] == "'mod'"
    assert fields["dovecote_message"] == "'x'"
    assert fields["dovecote_asctime"] == "'t'"
    assert fields["dovecote_args"] == "[1]"
    assert fields["ok"] == "1"
    assert fields["module"] == "'<string>'"  # the record's own, where the line was logged


def test_an_application_that_configured_structlog_gets_structlog_events() -> None:
    done = run(setup="""
        import structlog
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s")
        structlog.configure(processors=[structlog.processors.add_log_level,
                                        structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stdout))
        traffic()
    """)
    # dovecote's events go to structlog only (pykka's own lines go to logging)
    assert not [name for name in done.stderr.splitlines() if name.startswith("dovecote")]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    levels = {(e["event"], e["level"], e.get("outcome")) for e in events}
    assert ("dispatch.failed", "error", "error") in levels
    assert ("dispatch.failed", "warning", "rejected") in levels
    assert ("dispatch.ok", "debug", "ok") in levels
    assert ("message.received", "debug", None) in levels
    (nope,) = [e for e in events if e.get("method") == "nope"]
    assert nope["server"] == "app"
    assert nope["actor"] == "WorkerActor"


def test_structlog_configured_again_is_followed_by_every_logger() -> None:
    """An application that configures structlog a second time (another level,
    other processors) gets dovecote's lines through the new set-up, also from
    loggers that already logged under the first one."""
    done = run(setup="""
        import structlog
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                            logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        first = dovecote.get_rpc_server(transport, Target(topic="t1", server="s"), [Api()],
                                        name="first")
        first.start(); first.stop(); assert first.wait(5)
        traffic()  # module and actor loggers bind under the ERROR filter
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                            processors=[structlog.processors.add_log_level,
                                        structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stdout))
        again = dovecote.get_rpc_server(transport, Target(topic="t2", server="s"), [Api()],
                                        name="again")
        again.start(); again.stop(); assert again.wait(5)
        traffic()
    """)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    named = {(e["event"], e.get("server")) for e in events}
    assert ("server.started", "again") in named  # a module logger that logged before
    assert ("server.stopped", "again") in named
    assert ("dispatch.failed", "app") in named  # an actor's logger bound before
    assert not any(e["level"] == "debug" for e in events)
    assert "[error" in done.stderr  # the first set-up took the first traffic's errors


def test_structlog_through_its_stdlib_integration_names_the_loggers() -> None:
    done = run(setup="""
        import structlog
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        structlog.configure(
            processors=[structlog.stdlib.filter_by_level, structlog.stdlib.add_logger_name,
                        structlog.stdlib.add_log_level, structlog.processors.JSONRenderer()],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger)
        traffic()
    """)
    assert done.stderr == ""
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {(e["logger"], e["event"], e["level"]) for e in events} >= {
        ("dovecote.rpc.server", "dispatch.failed", "error"),
        ("dovecote.rpc.server", "dispatch.failed", "warning"),
        ("dovecote.actors", "server.stopping", "info"),
    }
    assert not [e for e in events if e["level"] == "debug"]  # the stdlib level: INFO


def test_an_oslo_log_application_sees_dovecotes_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "service.log"
    run(pre="""
        from oslo_config import cfg
        from oslo_log import log as oslo_logging
        oslo_logging.register_options(cfg.CONF)
        cfg.CONF(["--log-file", sys.argv[1]], project="billing")
        oslo_logging.setup(cfg.CONF, "billing")
    """, after="""
        oslo_logging.getLogger("billing").info("service done")
    """, args=(str(log_file),))
    text = log_file.read_text()
    assert re.search(r" INFO dovecote\.actors \[-\] listener\.started ", text), text
    assert re.search(r" ERROR dovecote\.rpc\.server \[-\] dispatch\.failed .*method=fail", text)
    assert re.search(r" WARNING dovecote\.rpc\.server \[-\] dispatch\.failed .*method=nope",
                     text)
    assert "ValueError: it failed" in text  # the traceback, as oslo.log writes it
    assert " INFO billing [-] service done" in text
    assert " DEBUG " not in text  # oslo.log's default level: INFO


def test_lines_written_while_a_span_is_current_carry_its_trace_and_span_ids() -> None:
    done = run(pre="""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    """, setup="""
        class Keep(logging.Handler):
            def __init__(self):
                super().__init__(logging.DEBUG)
                self.records = []
            def emit(self, record):
                self.records.append(record)
        keep = Keep()
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        logging.getLogger().addHandler(keep)
        missing("untraced")
        with trace.get_tracer("app").start_as_current_span("checkout") as span:
            try:
                client.call({}, "fail")
            except ValueError:
                pass
            app = span.get_span_context()
        provider.force_flush()
    """, after="""
        spans = {trace.format_span_id(s.context.span_id): trace.format_trace_id(s.context.trace_id)
                 for s in exporter.get_finished_spans()}
        print(json.dumps({
            "app_trace": trace.format_trace_id(app.trace_id),
            "app_span": trace.format_span_id(app.span_id), "spans": spans,
            "records": [{"event": r.event, "message": r.getMessage(),
                         "trace_id": getattr(r, "trace_id", None),
                         "span_id": getattr(r, "span_id", None)} for r in keep.records]}))
    """)
    found = json.loads(done.stdout.splitlines()[-1])
    (untraced,) = [r for r in found["records"] if "method=untraced" in r["message"]]
    assert untraced["trace_id"] is None
    assert "trace_id=" not in untraced["message"]
    (failed,) = [r for r in found["records"] if "method=fail" in r["message"]]
    assert failed["trace_id"] == found["app_trace"]  # the caller's trace, carried over
    assert re.fullmatch(r"[0-9a-f]{32}", failed["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", failed["span_id"])
    assert failed["span_id"] != found["app_span"]  # the server's own span of the call
    assert found["spans"].get(failed["span_id"]) == found["app_trace"]
    assert f"trace_id={failed['trace_id']} span_id={failed['span_id']}" in failed["message"]


def test_no_opentelemetry_import_and_no_cost_without_a_span() -> None:
    done = run(setup="""
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        traffic()
    """, after="""
        print("imported:", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    assert done.stdout.splitlines()[-1] == "imported: []"
    assert "trace_id=" not in done.stdout


def test_the_structlog_flag_read_on_the_dispatch_path_is_structlogs_own() -> None:
    """dovecote reads structlog's configuration flag without a call: it must
    say what ``structlog.is_configured()`` says, through configure and reset."""
    code = """
import structlog
from dovecote.observe._logging import _STRUCTLOG
seen = [(_STRUCTLOG.is_configured, structlog.is_configured())]
structlog.configure(processors=[])
seen.append((_STRUCTLOG.is_configured, structlog.is_configured()))
structlog.reset_defaults()
seen.append((_STRUCTLOG.is_configured, structlog.is_configured()))
print(seen)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "[(False, False), (True, True), (False, False)]"
