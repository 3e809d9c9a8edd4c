"""A service written the OpenStack way, on dovecote.oslo.

It reads everything from an oslo.config file (``--config-file``), runs under
oslo.service's threading launcher (a cotyledon master with one worker
process, as services moving off eventlet run), and follows oslo.service's
``start``/``stop``/``wait`` contract: ``stop`` on SIGTERM lets the request in
hand finish. The only line that names dovecote is the import.

Run by ``test_openstack_service.py``; not a test module itself.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from oslo_config import cfg
from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)

from oslo_service import service  # noqa: E402  (after the backend is chosen)

import dovecote.oslo as messaging  # noqa: E402  (the whole migration)

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("host", default="node1", help="This worker's server name."),
    cfg.StrOpt("topic", default="demo", help="The topic the service serves."),
])


class Manager:
    """The endpoint, as OpenStack managers are written."""

    target = messaging.Target(version="1.2")

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier

    def add(self, context: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def slow(self, context: dict[str, Any], seconds: float) -> str:
        self.notifier.info(context, "demo.slow.started", {"seconds": seconds})
        time.sleep(seconds)
        return "finished"


class DemoService(service.Service):  # type: ignore[misc]
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__()
        self.conf = conf
        self.transport: Any = None
        self.rpcserver: Any = None
        self.notifier: Any = None

    def start(self) -> None:
        super().start()
        self.transport = messaging.get_rpc_transport(self.conf)
        notifications = messaging.get_notification_transport(self.conf)
        self.notifier = messaging.Notifier(notifications, publisher_id=f"demo.{self.conf.host}")
        target = messaging.Target(topic=self.conf.topic, server=self.conf.host)
        self.rpcserver = messaging.get_rpc_server(
            self.transport, target, [Manager(self.notifier)], executor="threading")
        self.rpcserver.start()
        self.notifier.info({}, "demo.service.start", {"pid": os.getpid()})

    def stop(self, graceful: bool = False) -> None:
        self.rpcserver.stop()
        self.rpcserver.wait()  # the request in hand finishes and is answered
        self.notifier.info({}, "demo.service.stop", {"pid": os.getpid()})
        self.transport.cleanup()
        super().stop(graceful)

    def wait(self) -> None:
        super().wait()


def main() -> int:
    CONF(sys.argv[1:], project="demo")
    launcher = service.launch(CONF, DemoService(CONF), workers=1, restart_method="mutate")
    return int(launcher.wait() or 0)


if __name__ == "__main__":
    sys.exit(main())
