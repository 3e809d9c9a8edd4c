"""An OpenStack-style service on dovecote.oslo (``openstack_service.py``: an
oslo.config file, oslo.service's launcher, start/stop/wait), run as its own
process and driven by the real oslo.messaging from this one, through the same
configuration file."""

from __future__ import annotations

import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

import oslo_messaging
import pytest
from _rpc_support import delete_queues
from oslo_config import cfg

pytestmark = [pytest.mark.interop, pytest.mark.broker, pytest.mark.timeout(90)]

SERVICE = pathlib.Path(__file__).with_name("openstack_service.py")


class Collector:
    def __init__(self) -> None:
        self.events: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.events.put((publisher_id, event_type, payload))

    def expect(self, event_type: str, timeout: float = 30) -> tuple[str, str, Any]:
        while True:
            event = self.events.get(timeout=timeout)
            if event[1] == event_type:
                return event


def _oslo_conf(config: pathlib.Path) -> cfg.ConfigOpts:
    """oslo.messaging's configuration for the same file (plus the groups it
    reads from the global config)."""
    from oslo_messaging._metrics.client import oslo_messaging_metrics
    from oslo_messaging._tracing.client import oslo_messaging_tracing

    conf = cfg.ConfigOpts()
    conf.register_opts(oslo_messaging_metrics, group="oslo_messaging_metrics")
    conf.register_opts(oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf(["--config-file", str(config)], project="demo-client")
    return conf


def test_an_openstack_service_runs_on_dovecote_oslo_and_stops_gracefully_on_sigterm(
    rabbitmq: str, topic: str, tmp_path: pathlib.Path,
) -> None:
    config = tmp_path / "demo.conf"
    config.write_text(
        f"[DEFAULT]\ntransport_url = {rabbitmq}\ncontrol_exchange = {topic}_ex\n"
        f"host = {topic}_host\ntopic = {topic}\ngraceful_shutdown_timeout = 20\n\n"
        f"[oslo_messaging_notifications]\ndriver = messagingv2\n"
        f"topics = {topic}_notifications\n\n"
        f"[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n"
        f"heartbeat_timeout_threshold = 10\n")
    conf = _oslo_conf(config)
    rpc = oslo_messaging.get_rpc_transport(conf)
    notifications = oslo_messaging.get_notification_transport(conf)
    collector = Collector()
    listener = oslo_messaging.get_notification_listener(
        notifications, [oslo_messaging.Target(topic=f"{topic}_notifications")], [collector])
    listener.start()
    process = subprocess.Popen(
        [sys.executable, str(SERVICE), "--config-file", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        publisher, _, payload = collector.expect("demo.service.start")
        assert publisher == f"demo.{topic}_host"
        worker = payload["pid"]
        assert worker != process.pid  # oslo.service runs it in a worker process

        client = oslo_messaging.get_rpc_client(
            rpc, oslo_messaging.Target(topic=topic, version="1.2"), timeout=20)
        assert client.call({}, "add", a=2, b=3) == 5
        assert client.prepare(server=f"{topic}_host").call({}, "add", a=1, b=1) == 2
        with pytest.raises(oslo_messaging.MessagingException, match="UnsupportedVersion"):
            client.prepare(version="2.0").call({}, "add", a=1, b=1)
        # the [oslo_messaging_rabbit] section of the file reached dovecote's driver
        queues = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "--no-table-headers", "name", "type"],
            capture_output=True, text=True, check=True, timeout=60).stdout
        assert f"{topic}\tquorum" in queues.splitlines()

        # SIGTERM while a request is in hand: it finishes and is answered
        answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        caller = threading.Thread(
            target=lambda: answers.put(client.call({}, "slow", seconds=1.0)), daemon=True)
        caller.start()
        collector.expect("demo.slow.started")
        process.send_signal(signal.SIGTERM)
        assert answers.get(timeout=20) == "finished"
        assert collector.expect("demo.service.stop")[2]["pid"] == worker
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)  # the worker is gone too
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
        listener.stop()
        listener.wait()
        rpc.cleanup()
        notifications.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.{topic}_host", f"{topic}_notifications.info")
