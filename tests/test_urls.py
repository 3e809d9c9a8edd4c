"""Transport URLs: parsing, errors that name the bad part and never the
password, driver lookup through the ``dovecote.drivers`` entry points, and the
``get_*_transport`` aliases."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import dovecote
from dovecote import InvalidTransportURL, TransportHost, TransportURL
from dovecote._url import mask_password
from dovecote.drivers.memory import MemoryDriver

SECRET = "p@ss:w/rd,x"
QUOTED = "p%40ss%3Aw%2Frd%2Cx"


def test_several_hosts_credentials_vhost_and_query() -> None:
    url = TransportURL.parse(
        f"rabbit://alice:{QUOTED}@host1:5672,bob:two@host2:5673,[::1]:5674/my%2Fvhost"
        "?heartbeat=30&ssl=true&empty="
    )
    assert url.scheme == "rabbit"
    assert url.transport == "rabbit"
    assert url.hosts == (
        TransportHost(hostname="host1", port=5672, username="alice", password=SECRET),
        TransportHost(hostname="host2", port=5673, username="bob", password="two"),
        TransportHost(hostname="::1", port=5674),
    )
    assert url.virtual_host == "my/vhost"
    assert url.query == {"heartbeat": "30", "ssl": "true", "empty": ""}


def test_defaults_and_small_forms() -> None:
    assert TransportURL.parse("memory://") == TransportURL(scheme="memory")
    named = TransportURL.parse("memory://broker-a")
    assert named.hosts == (TransportHost(hostname="broker-a"),)
    assert named.virtual_host is None
    root = TransportURL.parse("rabbit://guest:guest@localhost:5672/")
    assert root.virtual_host == ""
    user_only = TransportURL.parse("rabbit://user@h")
    assert user_only.hosts[0].username == "user"
    assert user_only.hosts[0].password is None
    assert TransportURL.parse("RABBIT://h").scheme == "rabbit"
    assert TransportURL.parse("kombu+redis://h:6379/0").transport == "kombu"


def test_text_round_trip_masks_the_password() -> None:
    text = f"rabbit://alice:{QUOTED}@host1:5672,bob:two@host2/vh?a=1"
    url = TransportURL.parse(text)
    assert TransportURL.parse(url.to_text(mask=False)) == url
    for shown in (str(url), repr(url), url.to_text()):
        assert SECRET not in shown
        assert QUOTED not in shown
        assert ":two@" not in shown
        assert "alice:****@host1:5672" in shown
    assert SECRET not in repr(url.hosts[0])


@pytest.mark.parametrize(("text", "names"), [
    ("no-scheme-here", ["scheme"]),
    ("1abc://host", ["scheme", "1abc"]),
    ("rabbit://h:notaport/", ["port", "notaport", "'h'"]),
    ("rabbit://h:0/", ["port", "'0'"]),
    ("rabbit://h:70000/", ["port", "70000"]),
    ("rabbit://[::1:5672/", ["unclosed", "["]),
    ("rabbit://h/#frag", ["fragment"]),
    ("rabbit://,,/", ["empty host list"]),
    ("", ["non-empty"]),
])
def test_invalid_urls_name_the_bad_part(text: str, names: list[str]) -> None:
    with pytest.raises(InvalidTransportURL) as caught:
        TransportURL.parse(text)
    message = str(caught.value)
    for name in names:
        assert name in message, message
    assert isinstance(caught.value, dovecote.MessagingException)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("text", [
    f"rabbit://alice:{QUOTED}@h:bad/",
    f"rabbit://alice:{QUOTED}@h:1,bob:{QUOTED}@[::1/",
    f"rabbit://alice:{QUOTED}@h/#x",
    f"nosuchdriver://alice:{QUOTED}@h/",
])
def test_errors_never_show_the_password(text: str) -> None:
    with pytest.raises(InvalidTransportURL) as caught:
        dovecote.get_transport(text)
    shown = str(caught.value) + repr(caught.value) + str(caught.value.args) + caught.value.url
    assert QUOTED not in shown
    assert SECRET not in shown
    assert "****" in shown


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(InvalidTransportURL) as caught:
        dovecote.get_transport("carrier-pigeon://coop")
    message = str(caught.value)
    assert "carrier-pigeon" in message
    for known in ("memory", "rabbit", "amqp1"):
        assert known in message


def test_drivers_are_found_through_entry_points() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="dovecote.drivers")}
    assert found["memory"] == "dovecote.drivers.memory:MemoryDriver"
    assert {"memory", "rabbit", "kombu", "amqp1", "qpid"} <= set(found)
    transport = dovecote.get_transport("memory://entry")
    try:
        assert isinstance(transport.driver, MemoryDriver)
    finally:
        transport.cleanup()


def test_a_third_party_driver_plugs_in_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package adds a scheme by declaring an entry point."""
    from importlib import metadata

    from dovecote import _transport

    plugin = metadata.EntryPoint(name="pigeon", value="dovecote.drivers.memory:MemoryDriver",
                                 group="dovecote.drivers")
    real = _transport.entry_points

    def with_plugin(**kwargs: str) -> list[metadata.EntryPoint]:
        return [*real(**kwargs), plugin]

    monkeypatch.setattr(_transport, "entry_points", with_plugin)
    transport = dovecote.get_transport("pigeon://coop")
    try:
        assert isinstance(transport.driver, MemoryDriver)
        assert transport.url.scheme == "pigeon"
    finally:
        transport.cleanup()
    not_a_driver = metadata.EntryPoint(name="broken", value="dovecote:Target",
                                       group="dovecote.drivers")
    monkeypatch.setattr(_transport, "entry_points",
                        lambda **kwargs: [*real(**kwargs), not_a_driver])
    with pytest.raises(InvalidTransportURL, match="not a dovecote Driver"):
        dovecote.get_transport("broken://x")


def test_transport_aliases_and_options() -> None:
    for factory in (dovecote.get_transport, dovecote.get_rpc_transport,
                    dovecote.get_notification_transport):
        transport = factory("memory://alias?control_exchange=nova&custom=1",
                            allowed_remote_exmods=["remote_errors"], other=2)
        try:
            assert isinstance(transport, dovecote.Transport)
            assert isinstance(transport.driver, MemoryDriver)
            assert transport.allowed_remote_exmods == ("remote_errors",)
            assert transport.driver.control_exchange == "nova"
            assert transport.driver.options["custom"] == "1"
            assert transport.driver.options["other"] == 2
        finally:
            transport.cleanup()
    default = dovecote.get_transport()
    try:
        assert default.url.scheme == "memory"
    finally:
        default.cleanup()
    keyword_wins = dovecote.get_transport("memory://kw?control_exchange=a",
                                          control_exchange="b")
    try:
        assert keyword_wins.driver.control_exchange == "b"
    finally:
        keyword_wins.cleanup()
    parsed = TransportURL.parse("memory://parsed")
    from_parsed = dovecote.get_transport(parsed)
    try:
        assert from_parsed.url is parsed
    finally:
        from_parsed.cleanup()


def test_password_options_of_the_query_are_masked_too() -> None:
    url = TransportURL.parse("amqps://app:pw1@h/?ssl_key_password=pw2&ssl_ca_file=ca.pem")
    for text in (str(url), repr(url), mask_password(url.to_text(mask=False))):
        assert "pw1" not in text
        assert "pw2" not in text
        assert "ssl_ca_file=ca.pem" in text
    assert url.query["ssl_key_password"] == "pw2"


@pytest.mark.parametrize("scheme", ["amqp1", "amqps", "qpid"])
def test_every_amqp1_spelling_without_proton_names_the_extra_to_install(scheme: str) -> None:
    """Without python-qpid-proton, each AMQP 1.0 scheme says to install
    ``dovecote[amqp1]`` (not an extra named after the scheme, which does not exist)."""
    script = (
        "import sys; sys.modules['proton'] = None\n"
        "import dovecote\n"
        "try:\n"
        f"    dovecote.get_transport('{scheme}://127.0.0.1:5672/')\n"
        "except dovecote.InvalidTransportURL as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert "pip install 'dovecote[amqp1]'" in out
