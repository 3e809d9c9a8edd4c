"""The ``amqp1://`` driver's one thread: the reply receiver, started with the
first call, which hands what arrives on the driver's reply queue to the
waiting callers."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Protocol

from proton import Delivery, Timeout

from .._tls import TLSRefused
from ._connection import Inbox, check_open, close_quietly, content_encoding, describe

if TYPE_CHECKING:
    from proton.utils import BlockingConnection

    from ._broker import Amqp1Broker

__all__ = ["DeliverReply", "ReplyReceiver"]


class DeliverReply(Protocol):
    """Where replies go: the driver's :meth:`~dovecote.drivers.base.Driver.deliver_reply`."""

    def __call__(self, body: object, *, content_encoding: object = None,
                 unreadable: str | None = None) -> None: ...


class ReplyReceiver(threading.Thread):
    """Receives replies on ``reply_q`` and hands them to ``deliver`` (the
    driver's ``deliver_reply``), reconnecting with backoff, until :meth:`close`."""

    def __init__(self, broker: Amqp1Broker, reply_q: str, *, deliver: DeliverReply) -> None:
        super().__init__(name=f"dovecote-amqp1-replies-{reply_q[-8:]}", daemon=True)
        self.broker = broker
        self.reply_q = reply_q
        self._deliver = deliver
        self.ready = threading.Event()
        #: Why the broker's certificate was refused, once it was.
        self.refused: TLSRefused | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        broker = self.broker
        source = broker.plan.reply_source(self.reply_q)
        backoff = broker.new_backoff()
        while not self._stopped.is_set():
            conn: BlockingConnection | None = None
            opened = False
            try:
                broker.declare(queues=[source.queue] if source.queue else [])
                conn = broker.open_connection()
                inbox = Inbox()
                # Keep the BlockingReceiver: its __del__ unhooks the handler.
                receiver = conn.create_receiver(source.address, credit=0, handler=inbox)
                self.refused = None
                self.ready.set()
                backoff.opened()
                opened = True
                self._receive(conn, inbox, receiver.link)
            except TLSRefused as exc:  # no retry mends that: callers are told
                self.refused = exc
                self.ready.set()
                broker.log.error("replies.refused", error=str(exc))
                self._stopped.wait(backoff.maximum)
            except Exception as exc:  # noqa: BLE001 - the driver's only reply thread goes on
                # A lost connection (TRANSIENT_ERRORS), or anything else Proton
                # raises: start over on a fresh connection rather than let every
                # later call on this transport time out.
                broker.forget_declarations()
                delay = backoff.lost() if opened else backoff.failed()
                broker.log.warning("replies.reconnecting", delay_s=delay, error=describe(exc))
                self._stopped.wait(delay)
            finally:
                close_quietly(conn)

    def _receive(self, conn: BlockingConnection, inbox: Inbox, link: Any) -> None:
        prefetch = self.broker.prefetch
        while not self._stopped.is_set():
            if link.credit < prefetch:
                link.flow(prefetch - link.credit)
            with contextlib.suppress(Timeout):  # nothing came in 0.2 s: look again
                conn.wait(lambda: bool(inbox.items) or inbox.failure is not None, timeout=0.2)
            check_open(conn, inbox, (link,))
            items, inbox.items = inbox.items, []
            for _link, raw, delivery in items:
                delivery.update(Delivery.ACCEPTED)
                delivery.settle()
                # never raises, whatever the body
                self._deliver(raw.body, content_encoding=content_encoding(raw),
                              unreadable=getattr(raw, "unreadable", None))

    def close(self) -> None:
        """Stop and wait for the thread (at most one receive interval)."""
        self._stopped.set()
        if self.is_alive():
            self.join()
