"""``rabbit://`` and ``kombu+SCHEME://``: RabbitMQ (and any kombu transport),
wire-compatible with oslo.messaging's rabbit driver.

* Publishing on AMQP goes through one channel in confirm mode that every
  sending thread shares (see :mod:`._confirms`), so ``send`` returns once the
  broker confirmed the message while concurrent sends share the wait; lost
  connections are retried with back-off, failing over across the URL's hosts.
  Each send's own ``retry`` counts its attempts (a connection attempt another
  sender made while it waited counts as one), and the back-off waits happen
  outside every lock: ``retry=0`` is one attempt, never a wait behind another
  thread's retries.
  Other kombu transports publish through a pool (see :mod:`._pooled`).
  ``at_least_once`` publishes mandatory: an unroutable call raises
  :class:`MessageUndeliverable` instead of waiting for its timeout.
* Each listener owns a connection, channel and consumer, drained by ``poll``
  (see :mod:`._listener`); the broker holds what exceeds the prefetch.
* Replies reach callers through one reply queue and one thread per driver,
  created on the first call (see :mod:`._reply`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import amqp

from ... import _wire
from ..._errors import (
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageUndeliverable,
)
from ..._url import mask_password
from ...observe._logging import get_logger
from ..base import SERVER_RETRIES, Driver, Listener, PendingReply
from ._confirms import ConfirmingChannel, ConfirmLost, Nacked, Returned, Unreachable
from ._entities import Entities
from ._listener import KombuListener, connection_errors
from ._options import (
    AMQP_SCHEMES,
    OPTION_NAMES,
    Exchange,
    KombuOptions,
    build_connection,
)
from ._pooled import publish_pooled
from ._redis import expire_unread
from ._reply import ReplyConsumer

if TYPE_CHECKING:
    from ..._target import Target
    from ..._url import TransportURL

__all__ = ["KombuDriver"]


#: Options read elsewhere (``get_transport``) or accepted under oslo.messaging's name.
_OTHER_OPTIONS = frozenset({"control_exchange", "rabbit_qos_prefetch_count"})

log = get_logger("dovecote.kombu")
#: Why a send retrying when ``cleanup()`` came ends.
_CLEANED_UP = ConfirmLost("the transport was cleaned up")


def _wants_at_least_once(transport_options: Any) -> bool:
    if transport_options is None:
        return False
    if isinstance(transport_options, Mapping):
        return bool(transport_options.get("at_least_once"))
    return bool(getattr(transport_options, "at_least_once", False))


class KombuDriver(Driver):
    """The RabbitMQ driver (and any kombu transport through ``kombu+SCHEME://``).

    Options (URL query or ``get_transport`` keyword arguments) are listed in
    :class:`~._options.KombuOptions` and the README.
    """

    confirms = True

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.opts = KombuOptions.parse(url, self.options)
        #: AMQP 0-9-1 (py-amqp): delivery tags are numbers a ``multiple`` ack covers.
        self.is_amqp = url.scheme.removeprefix("kombu+") in AMQP_SCHEMES
        if self.opts.rabbit_stream_fanout and not self.is_amqp:
            raise InvalidTransportURL(
                str(url), "rabbit_stream_fanout needs RabbitMQ (a stream queue); "
                f"{url.scheme}:// has none: leave it unset")
        unknown = sorted(set(self.options) - OPTION_NAMES - _OTHER_OPTIONS)
        if unknown:
            log.warning("transport.unknown_options", transport=str(url), options=unknown,
                        hint="the rabbit driver ignores them: check their spelling")
        self.entities = Entities(self.opts)
        self._template = self.new_connection("publish")
        self.pool = self._template.Pool(limit=self.opts.rpc_conn_pool_size or None)
        # AMQP 0-9-1: one confirming channel every sending thread shares (see
        # ._confirms); other kombu transports publish through the pool.
        self._confirming: ConfirmingChannel | None = None
        if self.is_amqp:
            template = self._template
            self._confirming = ConfirmingChannel(
                self.new_connection("publish"), errors=connection_errors(template),
                recoverable=(*template.recoverable_connection_errors,
                             *template.recoverable_channel_errors, TimeoutError),
                errback=self._publisher_failover, connect_timeout=self.opts.connect_timeout)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._reply: ReplyConsumer | None = None
        self._listeners: weakref.WeakSet[KombuListener] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<KombuDriver {self.url}>"

    # -- helpers the listener and reply consumer share -------------------------
    @staticmethod
    def new_id() -> str:
        """A fresh hex uuid4, as every id on the wire."""
        return _wire.new_id()

    def new_connection(self, purpose: str) -> Any:
        """A fresh, unconnected kombu connection to the URL's hosts."""
        return build_connection(self.url, self.opts, purpose=purpose)

    def scrub(self, text: str) -> str:
        """``text`` with every password of the URL masked."""
        text = mask_password(text)
        for host in self.url.hosts:
            if host.password:
                text = text.replace(host.password, "****")
        return text

    def failure(self, what: str, exc: BaseException) -> MessageDeliveryFailure:
        """A :class:`MessageDeliveryFailure` saying what failed, where, why and
        what to do, with the password masked."""
        detail = f"{type(exc).__name__}: {exc}"
        hint = "check that the broker is running and reachable, and the URL's credentials"
        if "PRECONDITION_FAILED" in detail:
            hint = (
                "an exchange or queue of that name already exists with other arguments: make "
                "amqp_durable_queues / rabbit_quorum_queue / rabbit_transient_quorum_queue / "
                "rabbit_stream_fanout / rabbit_ha_queues match the "
                "services that declared it, or delete it"
            )
        elif "NOT_FOUND" in detail:
            hint = "the exchange or queue does not exist: start a listener first"
        return MessageDeliveryFailure(self.scrub(f"{what} on {self.url}: {detail}; {hint}"))

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        """kombu's errback while (re)connecting: log the retry, and add the
        ``kombu_reconnect_splay`` share to kombu's own wait (cut short by
        ``cleanup()``)."""
        splay = self.opts.splayed(0.0)
        self._log_retry(exc, interval + splay)
        if splay:
            self._closing.wait(splay)

    def _log_retry(self, exc: BaseException, wait: float) -> None:
        log.warning("connection.retrying", transport=str(self.url), retry_in=wait,
                    error=self.scrub(f"{type(exc).__name__}: {exc}"))

    def retry_policy(self, retry: int | None) -> dict[str, Any]:
        """kombu's retry arguments for a ``retry`` argument (``None``: the
        ``max_retries`` option; ``None`` or -1 there: forever)."""
        return self.opts.retry_policy(retry if retry is not None else self.opts.max_retries)

    @property
    def server_retries(self) -> int:
        """Retries for what a server publishes about a message it took (replies,
        heartbeats, requeues, dead letters): ``max_retries``, else ``SERVER_RETRIES``."""
        return self.opts.max_retries if self.opts.max_retries is not None else SERVER_RETRIES

    def forget_listener(self, listener: KombuListener) -> None:
        """A listener was cleaned up: ``cleanup`` need not close it."""
        with self._lock:
            self._listeners.discard(listener)

    def _exchange(self, target: Target) -> str:
        return target.exchange or self.control_exchange

    # -- publishing --------------------------------------------------------------
    def publish(
        self, exchange: Any, routing_key: str, body: str | bytes, *,
        headers: Mapping[str, Any] | None = None, expiration: float | None = None,
        mandatory: bool = False, declare: Sequence[Any] = (), retry: int | None = None,
        content_type: str = "application/json", content_encoding: str = "utf-8",
    ) -> None:
        """Publish ``body`` persistently and wait for the broker's confirm,
        retrying ``retry`` times (default ``max_retries``; ``None``: forever).

        Each attempt is bounded (``connect_timeout`` per host, the lock, and
        ``confirm_timeout``); the waits between attempts happen here, outside
        every lock, and end early at ``cleanup()``. Raises
        :class:`MessageUndeliverable` when a mandatory message was returned,
        :class:`MessageDeliveryFailure` when the retries ran out.
        """
        self.ensure_open("send")
        if self._confirming is None:
            publish_pooled(
                self, exchange, routing_key, body, headers=headers, expiration=expiration,
                mandatory=mandatory, declare=declare, retry=retry, content_type=content_type,
                content_encoding=content_encoding)
            return
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        properties: dict[str, Any] = {
            "content_type": content_type, "content_encoding": content_encoding,
            "application_headers": dict(headers or {}), "delivery_mode": 2,
        }
        if expiration is not None:  # as kombu writes it: whole milliseconds
            properties["expiration"] = str(int(expiration * 1000))
        message = amqp.Message(
            body.encode(content_encoding) if isinstance(body, str) else body, **properties)
        policy = self.retry_policy(retry)
        interval, retries = policy["interval_start"], 0
        while True:
            try:
                self._confirming.publish(
                    message, exchange=name, routing_key=routing_key, mandatory=mandatory,
                    declare=declare, timeout=self.opts.confirm_timeout)
            except Returned as exc:
                raise MessageUndeliverable(exc.reason, name, routing_key, body) from None
            except (ConfirmLost, Unreachable) as exc:
                if self.closed:
                    raise self._publish_failure(name, routing_key, _CLEANED_UP) from None
                if policy["max_retries"] is not None and retries >= policy["max_retries"]:
                    raise self._publish_failure(name, routing_key, exc,
                                                attempts=retries + 1) from None
                retries += 1
                wait = self.opts.splayed(interval)
                self._log_retry(exc, wait)
                if self._closing.wait(wait):
                    raise self._publish_failure(name, routing_key, _CLEANED_UP) from None
                interval = min(interval + policy["interval_step"], policy["interval_max"])
            except Nacked as exc:
                raise self._publish_failure(name, routing_key, exc) from None
            except connection_errors(self._template) as exc:
                raise self._publish_failure(name, routing_key, exc) from None
            else:
                return

    def _publish_failure(self, exchange: str, routing_key: str, exc: BaseException, *,
                         attempts: int | None = None) -> MessageDeliveryFailure:
        tries = "" if attempts is None else f" ({attempts} attempt{'s' * (attempts != 1)})"
        return self.failure(
            f"Could not publish to exchange {exchange!r} with routing key {routing_key!r}"
            f"{tries}", exc)

    def _publisher_failover(self, exc: BaseException, _interval: float) -> None:
        """kombu's errback when one host of a connection attempt failed and the
        attempt goes on to the next (no wait: the back-off is ``publish``'s):
        log it, or end the attempt once ``cleanup()`` began."""
        if self._closing.is_set():
            raise ConfirmLost("the transport was cleaned up")
        self._log_retry(exc, 0.0)

    def send_reply(self, reply_q: str, data: str, *, msg_id: str | None) -> None:
        """Publish an encoded reply or heartbeat to ``reply_q``; one for a queue
        that does not exist (the caller is gone) is logged and dropped."""
        try:
            self.publish("", reply_q, data, mandatory=True, retry=self.server_retries)
            if not self.is_amqp:
                self._expire_unread(reply_q)
        except MessageUndeliverable:
            log.warning("reply.undeliverable", transport=str(self.url), reply_q=reply_q,
                        msg_id=msg_id, reason="the reply queue does not exist: caller gone")
        except MessageDeliveryFailure as exc:
            log.error("reply.failed", transport=str(self.url), reply_q=reply_q,
                      msg_id=msg_id, error=str(exc))

    def _expire_unread(self, reply_q: str) -> None:
        """Redis: a reply queue nobody reads (its caller is gone) expires after
        ``rabbit_transient_queues_ttl``, as RabbitMQ's ``x-expires`` would do."""
        conn = self.pool.acquire(block=True)
        try:
            expire_unread(conn.default_channel, reply_q, self.opts.rabbit_transient_queues_ttl)
        except Exception as exc:  # noqa: BLE001 - best effort: the reply was sent
            log.debug("reply.expire_failed", reply_q=reply_q, error=self.scrub(str(exc)))
        finally:
            conn.release()

    def _reply_queue(self, retry: int | None) -> str:
        with self._lock:
            self.ensure_open("call")
            if self._reply is None:
                self._reply = ReplyConsumer(self, retry=retry)
            return self._reply.name

    def send(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        reply: PendingReply | None = None, timeout: float | None = None,
        call_monitor_timeout: float | None = None, retry: int | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not target.topic:
            raise InvalidTarget("A topic is required to send a message", target)
        topic = target.topic
        reply_q = self._reply_queue(retry) if reply is not None else None
        packed = _wire.pack_request(
            ctxt, message, msg_id=reply.msg_id if reply is not None else None,
            reply_q=reply_q, call_monitor_timeout=call_monitor_timeout,
        )
        body = _wire.encode_envelope(packed)
        if target.fanout:
            exchange = self.entities.fanout_exchange(topic)
            self.publish(exchange, topic, body, declare=[exchange], retry=retry)
            return
        exchange = self.entities.topic_exchange(self._exchange(target))
        self.publish(
            exchange, f"{topic}.{target.server}" if target.server else topic, body,
            declare=[exchange], retry=retry,
            expiration=timeout if reply is not None and timeout else None,
            mandatory=_wants_at_least_once(transport_options) or self.opts.at_least_once,
        )

    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        """Publish a notification; like oslo.messaging, also declare the queue
        ``<topic>.<priority>`` so notifications wait there until a listener comes."""
        if not target.topic:
            raise InvalidTarget("A topic is required to send a notification", target)
        packed = _wire.pack_notification(ctxt, message)
        body = _wire.encode_envelope(packed) if version >= 2.0 else _wire.dumps(packed)
        name = self._exchange(target)
        exchange = self.entities.topic_exchange(name)
        queue = self.entities.topic_queue(target.topic, [(name, target.topic)])
        self.publish(exchange, target.topic, body, declare=[exchange, queue], retry=retry)

    # -- listening ---------------------------------------------------------------
    def _track(self, listener: KombuListener) -> KombuListener:
        with self._lock:
            self._listeners.add(listener)
        return listener

    def listen(self, target: Target) -> Listener:
        if not target.topic:
            raise InvalidTarget("A topic is required to listen", target)
        topic = target.topic
        exchange = self._exchange(target)
        queues = [self.entities.topic_queue(topic, [(exchange, topic)])]
        if target.server:
            server_queue = f"{topic}.{target.server}"
            queues.append(self.entities.topic_queue(server_queue, [(exchange, server_queue)]))
        queues.append(self.entities.fanout_queue(topic))
        return self._track(KombuListener(self, queues, notifications=False, name=str(target)))

    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        bindings: dict[str, list[tuple[str, str]]] = {}
        for target, priority in targets_and_priorities:
            if not target.topic:
                raise InvalidTarget("A topic is required to listen for notifications", target)
            key = f"{target.topic}.{priority}"
            pair = (self._exchange(target), key)
            found = bindings.setdefault(pool or key, [])
            if pair not in found:
                found.append(pair)
        queues = [self.entities.topic_queue(name, pairs) for name, pairs in bindings.items()]
        name = f"notifications {sorted(bindings)}"
        return self._track(KombuListener(self, queues, notifications=True, name=name))

    def listen_dead_letters(self, queue: str) -> Listener:
        return self._track(KombuListener(
            self, [self.entities.dead_letter_queue(queue)], notifications=True,
            name=f"dead letters {queue}",
        ))

    def delete_queue(self, name: str) -> None:
        """Delete the queue ``name`` (errors are logged: it may be gone already)."""
        conn = self.pool.acquire(block=True)
        try:
            channel = conn.default_channel
            channel.queue_delete(name)
        except connection_errors(conn) as exc:
            conn.collect()
            log.warning("queue.delete_failed", queue=name, error=self.scrub(str(exc)))
        finally:
            conn.release()

    def cleanup(self) -> None:
        """Stop the reply thread, close every listener this driver made and every
        pooled connection. The driver cannot send after this."""
        with self._lock:
            self.closed = True
            reply, self._reply = self._reply, None
            listeners = list(self._listeners)
        self._closing.set()
        if self._confirming is not None:
            self._confirming.close()
        if reply is not None:
            reply.stop()
        for listener in listeners:
            listener.cleanup()
        self.pool.force_close_all()
        self._pending.clear()

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """A passive ``queue.declare`` on a pooled connection. AMQP only: kombu's
        Redis keeps no empty queue, so it cannot tell "empty" from "none"."""
        import contextlib

        if not self.is_amqp:
            return None
        self.ensure_open("inspect a queue")
        conn = self.pool.acquire(block=True)
        try:
            channel = conn.channel()
            try:
                _, messages, _ = channel.queue_declare(queue=name, passive=True)
            except amqp.exceptions.NotFound:
                return False, 0
            finally:
                with contextlib.suppress(*connection_errors(conn)):
                    channel.close()
        except connection_errors(conn) as exc:
            conn.collect()
            raise self.failure(f"Could not inspect queue {name!r}", exc) from None
        finally:
            conn.release()
        return True, messages
