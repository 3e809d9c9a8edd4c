"""Prometheus metrics and OpenTelemetry traces, switched on, on ``memory://``.

Run: python -m pip install 'dovecote[metrics,otel]' opentelemetry-sdk
     python examples/metrics_and_traces.py [BROKER_URL]

(with a broker URL it runs there, and deletes the queues it made when it is done)

A service exports dovecote's metrics on a registry (a real service would
serve it with ``prometheus_client.start_http_server``), and the application
configures an OpenTelemetry tracer provider (here the SDK with an in-memory
exporter; a real service would export over OTLP). A call then shows up as a
client span, a server span around dispatch and the endpoint's own span, all
in one trace (a call's spans are named by OpenTelemetry's RPC conventions:
``<topic>/<method>``); and the counters say what was sent and handled, and how.
"""

from __future__ import annotations

import sys

import prometheus_client
import prometheus_client.parser
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dovecote
import dovecote.metrics
import dovecote.tracing
from dovecote.testing import DeclaredQueues

URL = sys.argv[1] if len(sys.argv) > 1 else "memory://metrics-and-traces"
tracer = trace.get_tracer("inventory")


class Inventory:
    """An endpoint that traces its own work: the span nests under dovecote's."""

    def __init__(self) -> None:
        self.stock = {"apple": 3}

    @dovecote.expected_exceptions(LookupError)  # the caller's mistake, not the server's
    def take(self, ctxt: dict, item: str) -> int:
        with tracer.start_as_current_span("inventory.take"):
            if self.stock.get(item, 0) < 1:
                raise LookupError(f"no {item} left")
            self.stock[item] -= 1
            return self.stock[item]


def main() -> None:
    registry = prometheus_client.CollectorRegistry()
    dovecote.metrics.enable(registry=registry)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # what the application does once at start
    dovecote.tracing.enable()

    transport = dovecote.get_transport(URL)
    # Run on a broker, a demo tidies up: the queues it declares that were not there
    # before are deleted at the end. (A real service keeps its queues.)
    declared = DeclaredQueues(transport)
    target = dovecote.Target(topic="inventory", server="store-1")
    server = dovecote.get_rpc_server(transport, target, [Inventory()], name="store-1")
    server.start()
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="inventory"), timeout=5)
    try:
        print("take apple ->", client.call({}, "take", item="apple"))
        try:
            client.call({}, "take", item="pear")
        except LookupError as exc:  # builtins: rebuilt as the caller's own class
            print("take pear -> LookupError:", str(exc).splitlines()[0])
    finally:
        server.stop()
        server.wait(timeout=5)
        declared.delete()
        transport.cleanup()

    print("metrics:")
    wanted = ("dovecote_messages_handled_total", "dovecote_rpc_client_call_seconds_count",
              "dovecote_messages_sent_total")
    for family in prometheus_client.parser.text_string_to_metric_families(
            prometheus_client.generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name in wanted:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                print(f"  {sample.name}{{{labels}}} {sample.value:g}")

    print("traces:")
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    ids = {span.context.span_id: span for span in spans if span.context is not None}
    for span in spans:
        print(f"  {'  ' * _depth(span, ids)}{span.name} [{span.kind.name.lower()}]"
              f" {span.status.status_code.name.lower()}")
    print("one trace per call:", len({span.context.trace_id for span in spans
                                       if span.context is not None}) == 2)
    dovecote.tracing.disable()
    dovecote.metrics.disable()


def _depth(span: ReadableSpan, ids: dict[int, ReadableSpan]) -> int:
    depth, parent = 0, span.parent
    while parent is not None and parent.span_id in ids:
        depth += 1
        parent = ids[parent.span_id].parent
    return depth


if __name__ == "__main__":
    main()
