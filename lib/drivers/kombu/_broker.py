"""What every part of the kombu driver shares about its broker: the URL and
its parsed options, the exchanges and queues they make, fresh connections,
publishing, and the errors a user sees (password masked).

:class:`~._driver.KombuDriver` owns one :class:`KombuBroker`; its listeners,
reply consumer and incoming messages are given the broker, never the driver,
so no module of the driver imports the driver class back.

* Publishing on AMQP goes through one channel in confirm mode that every
  sending thread shares (see :mod:`._confirms`), so ``publish`` returns once
  the broker confirmed the message while concurrent sends share the wait; lost
  connections are retried with back-off, failing over across the URL's hosts.
  Each send's own ``retry`` counts its attempts (a connection attempt another
  sender made while it waited counts as one), and the back-off waits happen
  outside every lock: ``retry=0`` is one attempt, never a wait behind another
  thread's retries.
* Other kombu transports publish through a pool (see :mod:`._pooled`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import amqp

from ..._errors import InvalidTransportURL, MessageDeliveryFailure, MessageUndeliverable
from ..._url import mask_password
from ...observe._logging import get_logger
from ..base import SERVER_RETRIES
from ._confirms import ConfirmingChannel, ConfirmLost, Nacked, Returned, Unreachable
from ._entities import Entities
from ._options import (
    AMQP_SCHEMES,
    Exchange,
    KombuOptions,
    build_connection,
    connection_errors,
)
from ._pooled import PooledPublisher
from ._redis import expire_unread

if TYPE_CHECKING:
    from ..._url import TransportURL

__all__ = ["KombuBroker"]

log = get_logger(__name__)
#: Why a send retrying when ``close()`` came ends.
_CLEANED_UP = ConfirmLost("the transport was cleaned up")


class KombuBroker:
    """The driver's side of its broker: options, entities, connections and
    publishing, shared by the driver, its listeners, its reply consumer and
    the messages they take.

    ``ensure_open(doing)`` raises once the transport was cleaned up (the
    driver's :meth:`~dovecote.drivers.base.Driver.ensure_open`): a publish
    asks it first.
    """

    def __init__(
        self, url: TransportURL, options: Mapping[str, Any], *,
        ensure_open: Callable[[str], None],
    ) -> None:
        self.url = url
        self.opts = KombuOptions.parse(url, options)
        #: AMQP 0-9-1 (py-amqp): delivery tags are numbers a ``multiple`` ack covers.
        self.is_amqp = url.scheme.removeprefix("kombu+") in AMQP_SCHEMES
        if self.opts.rabbit_stream_fanout and not self.is_amqp:
            raise InvalidTransportURL(
                str(url), "rabbit_stream_fanout needs RabbitMQ (a stream queue); "
                f"{url.scheme}:// has none: leave it unset")
        self.entities = Entities(self.opts)
        self._ensure_open = ensure_open
        self._template = self.new_connection("publish")
        self.pool = self._template.Pool(limit=self.opts.rpc_conn_pool_size or None)
        # AMQP 0-9-1: one confirming channel every sending thread shares (see
        # ._confirms); other kombu transports publish through the pool.
        self._confirming: ConfirmingChannel | None = None
        self._pooled: PooledPublisher | None = None
        if self.is_amqp:
            template = self._template
            self._confirming = ConfirmingChannel(
                self.new_connection("publish"), errors=connection_errors(template),
                recoverable=(*template.recoverable_connection_errors,
                             *template.recoverable_channel_errors, TimeoutError),
                errback=self._publisher_failover, connect_timeout=self.opts.connect_timeout)
        else:
            self._pooled = PooledPublisher(
                self.pool, confirm_timeout=self.opts.confirm_timeout,
                errback=self.on_connection_error, failure=self.failure)
        self._closing = threading.Event()

    def __repr__(self) -> str:
        return f"<KombuBroker {self.url}>"

    # -- connections and errors ------------------------------------------------
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
                "rabbit_stream_fanout / rabbit_ha_queues / notification_queue_ttl / "
                "notification_queue_max_length match the services that declared it, or "
                "delete it"
            )
        elif "NOT_FOUND" in detail:
            hint = "the exchange or queue does not exist: start a listener first"
        return MessageDeliveryFailure(self.scrub(f"{what} on {self.url}: {detail}; {hint}"))

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        """kombu's errback while (re)connecting: log the retry, and add the
        ``kombu_reconnect_splay`` share to kombu's own wait (cut short by
        :meth:`close`)."""
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
        every lock, and end early at :meth:`close`. Raises
        :class:`MessageUndeliverable` when a mandatory message was returned,
        :class:`MessageDeliveryFailure` when the retries ran out.
        """
        self._ensure_open("send")
        if self._confirming is None:
            assert self._pooled is not None
            self._pooled.publish(
                exchange, routing_key, body, headers=headers, expiration=expiration,
                mandatory=mandatory, declare=declare, policy=self.retry_policy(retry),
                content_type=content_type, content_encoding=content_encoding)
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
                if self._closing.is_set():
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
        log it, or end the attempt once :meth:`close` began."""
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

    # -- cleanup -----------------------------------------------------------------
    def close(self) -> None:
        """End every wait between publish attempts and close the confirming
        channel: no publish can begin or retry after this."""
        self._closing.set()
        if self._confirming is not None:
            self._confirming.close()

    def close_pool(self) -> None:
        """Close every pooled connection (last: a listener's or reply consumer's
        cleanup may still run before it)."""
        self.pool.force_close_all()
