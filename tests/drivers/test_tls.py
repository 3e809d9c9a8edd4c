"""TLS on both broker drivers, against the test RabbitMQ's TLS listener
(127.0.0.1:5671, a private CA made at test time) and, for certificates no real
broker here presents (another host's, an expired one), against a TLS server of
the test's own on loopback. Each refusal is checked for what it tells the user.

The behaviour suites also run whole over TLS: ``rabbit-tls`` and ``amqp1-tls``
in ``conftest.TRANSPORTS``."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import trustme
from _rpc_support import PATIENCE, Recorder, delete_queues, serve
from conftest import CA_FILE, TLS_DIR

import dovecote
from dovecote import Target
from dovecote.drivers._tls import TLSConnection, TLSOptions

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_deaths")]

KEY_PASSWORD = "dovecote-test-passphrase"  # scripts/make-test-certs.py
SCHEMES = {"rabbit": "rabbit://{auth}{host}/?ssl=true&{query}",
           "amqp1": "amqps://{auth}{host}/?{query}"}


def url(kind: str, *, host: str = "127.0.0.1:5671", auth: str = "guest:guest@",
        **query: Any) -> str:
    text = "&".join(f"{key}={value}" for key, value in query.items())
    return SCHEMES[kind].format(auth=auth, host=host, query=text)


@pytest.fixture(params=list(SCHEMES))
def kind(request: pytest.FixtureRequest, rabbitmq: str) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _forget_queues(topic: str) -> Iterator[None]:
    yield
    delete_queues("rabbit://", topic, f"{topic}.s1", f"{topic}.info")


class Api:
    def __init__(self) -> None:
        self.seen = Recorder()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def remember(self, ctxt: Any, value: Any) -> None:
        self.seen.add(value)

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.seen.add(payload)


def roundtrip(transport: dovecote.Transport, topic: str) -> None:
    """A call, a cast, a fanout cast and a notification, over ``transport``."""
    api = Api()
    with serve(transport, Target(topic=topic, server="s1"), [api]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert client.call({}, "echo", value="over TLS") == "over TLS"
        client.cast({}, "remember", value="cast")
        client.prepare(fanout=True).cast({}, "remember", value="fanout")
        assert sorted(api.seen.wait_for(2)) == ["cast", "fanout"]
    notes = Api()
    listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [notes])
    listener.start()
    try:
        dovecote.Notifier(transport, publisher_id="p", topics=[topic]).info({}, "e", "note")
        assert notes.seen.wait_for(1) == ["note"]
    finally:
        listener.stop()
        assert listener.wait(PATIENCE)


def test_a_client_certificate_with_external_and_an_encrypted_key(kind: str, topic: str) -> None:
    """No user in the URL: the client certificate (CN dovecote-client) logs in
    with EXTERNAL; its key is encrypted, opened with ``ssl_key_password``."""
    mechanism = ("rabbit_login_method" if kind == "rabbit" else "sasl_mechanisms")
    transport = dovecote.get_transport(url(
        kind, auth="", host="localhost:5671", ssl_ca_file=CA_FILE,
        ssl_cert_file=TLS_DIR / "client.pem", ssl_key_file=TLS_DIR / "client-encrypted.key",
        ssl_key_password=KEY_PASSWORD, **{mechanism: "EXTERNAL"}))
    try:
        roundtrip(transport, topic)
    finally:
        transport.cleanup()


def test_ssl_without_a_port_means_5671(kind: str, topic: str) -> None:
    transport = dovecote.get_transport(url(kind, host="127.0.0.1", ssl_ca_file=CA_FILE))
    try:
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        with serve(transport, Target(topic=topic, server="s1"), [Api()]):
            assert client.call({}, "echo", value=5671) == 5671
    finally:
        transport.cleanup()


def refusal(kind: str, address: str, **query: Any) -> str:
    """What a user sees when the broker's certificate is refused: the text of
    the exception ``listen()`` raises (a call raises the same)."""
    transport = dovecote.get_transport(url(kind, host=address, connect_timeout=2,
                                           listen_retries=0, **query))
    try:
        with pytest.raises(dovecote.MessageDeliveryFailure) as info:
            transport.driver.listen(Target(topic="tls_refused"))
        if kind == "amqp1":  # Proton's own connection (listen() declared over 0-9-1 first)
            with pytest.raises(dovecote.MessageDeliveryFailure) as proton:
                transport.driver.open_connection()
            assert str(proton.value) == str(info.value)
        return str(info.value)
    finally:
        transport.cleanup()


def test_a_ca_that_was_not_given_is_refused(kind: str) -> None:
    """The broker's CA is private: without ``ssl_ca_file`` the system's trust
    store is used, which does not know it."""
    text = refusal(kind, "127.0.0.1:5671")
    assert "certificate chain of 127.0.0.1:5671 is not trusted by the system's trust store" in (
        text), text
    assert "set ssl_ca_file" in text
    assert "guest" not in text


def test_a_name_the_certificate_does_not_hold_is_refused(kind: str) -> None:
    text = refusal(kind, "127.0.0.1:5671", ssl_ca_file=CA_FILE,
                   ssl_server_hostname="broker.example")
    assert "not valid for the host name 'broker.example'" in text, text
    assert "ssl_server_hostname" in text


@contextlib.contextmanager
def tls_server(cert: trustme.LeafCert) -> Iterator[str]:
    """A TLS server on loopback presenting ``cert``: it completes no handshake a
    verifying client accepts, which is all these tests need of it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopped = threading.Event()

    def serve_forever() -> None:
        while not stopped.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(sock, server_side=True):
                pass
            sock.close()

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopped.set()
        thread.join(PATIENCE)
        listener.close()


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


def test_a_certificate_for_another_host_is_refused(kind: str,
                                                   test_ca: tuple[trustme.CA, str]) -> None:
    ca, ca_file = test_ca
    with tls_server(ca.issue_cert("other.example")) as address:
        text = refusal(kind, address, ssl_ca_file=ca_file)
    assert f"the certificate of {address} is not valid for the host name '127.0.0.1'" in (
        text), text


def test_an_expired_certificate_is_refused(kind: str, test_ca: tuple[trustme.CA, str]) -> None:
    ca, ca_file = test_ca
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert("127.0.0.1", not_before=now - datetime.timedelta(days=30),
                            not_after=now - datetime.timedelta(days=1))
    with tls_server(expired) as address:
        text = refusal(kind, address, ssl_ca_file=ca_file)
    assert f"the certificate of {address} is outside its validity period" in text, text
    assert "expired" in text


def test_ssl_verify_false_connects_and_warns(kind: str, topic: str) -> None:
    with structlog.testing.capture_logs() as logs:
        transport = dovecote.get_transport(url(kind, ssl_verify="false"))
        try:
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            with serve(transport, Target(topic=topic, server="s1"), [Api()]):
                assert client.call({}, "echo", value="unverified") == "unverified"
        finally:
            transport.cleanup()
    warnings = [e for e in logs if e["event"] == "transport.tls_unverified"]
    assert warnings
    assert all(e["log_level"] == "warning" for e in warnings)


def test_tls_files_that_cannot_be_read_are_named_never_the_password(kind: str,
                                                                     rabbitmq: str) -> None:
    with pytest.raises(dovecote.InvalidTransportURL, match="ssl_key_password") as info:
        dovecote.get_transport(url(
            kind, ssl_ca_file=CA_FILE, ssl_cert_file=TLS_DIR / "client.pem",
            ssl_key_file=TLS_DIR / "client-encrypted.key", ssl_key_password="not-the-one"))
    assert "not-the-one" not in str(info.value)
    with pytest.raises(dovecote.InvalidTransportURL, match="ssl_ca_file"):
        dovecote.get_transport(url(kind, ssl_ca_file="/nowhere/ca.pem"))
    with pytest.raises(dovecote.InvalidTransportURL, match=r"older than 1\.2"):
        dovecote.get_transport(url(kind, ssl_version="TLSv1"))


def test_each_host_of_a_url_is_verified_under_its_own_name() -> None:
    """Failover across a URL's hosts: each attempt checks the certificate for
    the host it connects to (or ``ssl_server_hostname``), not the first one."""
    url_ = dovecote.TransportURL.parse("rabbit://h1,h2/")
    options = TLSOptions.parse(url_, {"ssl": "true", "ssl_ca_file": str(CA_FILE)})
    for host, name in (("h1:5671", "h1"), ("h2.example:5671", "h2.example"),
                       ("[::1]:5671", "::1")):
        transport = TLSConnection.Transport(None, host, 1.0, options)
        assert transport.sslopts["server_hostname"] == name
    pinned = TLSOptions.parse(url_, {"ssl": "true", "ssl_server_hostname": "broker.example"})
    assert TLSConnection.Transport(None, "h2:5671", 1.0, pinned).sslopts[
        "server_hostname"] == "broker.example"


def test_cleartext_plain_to_another_host_needs_an_opt_in() -> None:
    with pytest.raises(dovecote.InvalidTransportURL,
                       match=r"cleartext to broker\.example") as info:
        dovecote.get_transport("amqp1://app:s3cret@broker.example:5672/")
    assert "s3cret" not in str(info.value)
    assert "sasl_allow_insecure=true" in str(info.value)
    # the opt-in, TLS, and loopback are all accepted (nothing connects here)
    for accepted in ("amqp1://app:s3cret@broker.example:5672/?sasl_allow_insecure=true",
                     f"amqps://app:s3cret@broker.example/?ssl_ca_file={CA_FILE}",
                     "amqp1://app:s3cret@127.0.0.1:5672/", "amqp1://app:s3cret@localhost/"):
        dovecote.get_transport(accepted).cleanup()


def test_no_guest_credentials_are_made_up() -> None:
    with pytest.raises(dovecote.InvalidTransportURL, match=r"no user for broker\.example"):
        dovecote.get_transport("amqps://broker.example/")
