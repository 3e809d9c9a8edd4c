"""Every driver names a misspelled option when the transport is built, and
only that one: the test URLs' own options (TLS files, say) pass silently."""

from __future__ import annotations

import structlog

import dovecote


def _unknown_options_logged(url: str) -> list[list[str]]:
    with structlog.testing.capture_logs() as logs:
        dovecote.get_transport(url).cleanup()
    return [e["options"] for e in logs if e["event"] == "transport.unknown_options"]


def test_a_misspelled_option_is_reported_by_every_driver(transport_url: str) -> None:
    joiner = "&" if "?" in transport_url else "?"
    assert _unknown_options_logged(transport_url) == []
    assert _unknown_options_logged(f"{transport_url}{joiner}prefetch_cont=5&hearbeat=3") == [
        ["hearbeat", "prefetch_cont"]]


def test_control_exchange_is_every_drivers_option(transport_url: str) -> None:
    joiner = "&" if "?" in transport_url else "?"
    assert _unknown_options_logged(f"{transport_url}{joiner}control_exchange=nova") == []
