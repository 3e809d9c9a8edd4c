"""dovecote.oslo's options (``dovecote.oslo.opts`` and ``_optdefs``): the same
names, types, defaults, deprecated names and secret flags as the installed
oslo.messaging registers, help in dovecote's own words, every option
accounted for once (read by the face, mapped onto a driver option, or
registered only), every mapping pointing at a real driver option, and a
configuration file that reads back through them."""

from __future__ import annotations

import difflib
import inspect
import os
import socket
import sys
from pathlib import Path
from typing import Any

import oslo_messaging.opts
import pytest
from oslo_config import cfg

from dovecote._url import TransportURL
from dovecote.drivers import _tls
from dovecote.drivers.amqp1 import _broker as amqp1_broker
from dovecote.drivers.amqp1 import _security as amqp1_security
from dovecote.drivers.kombu._options import KombuOptions
from dovecote.oslo import _optdefs, opts
from dovecote.oslo._optdefs_common import NOT_IMPLEMENTED_PREFIX, NOT_IMPLEMENTED_SUFFIX

pytestmark = pytest.mark.interop

OSLO = oslo_messaging.opts.list_opts()
OURS = dict(opts.list_opts())
OSLO_PAIRS = [(group, opt) for group, options in OSLO for opt in options]
OUR_PAIRS = [(group, opt) for group, options in opts.list_opts() for opt in options]
#: How alike (difflib ratio, 0..1) a help text may be to oslo.messaging's.
MOST_ALIKE = 0.7

#: oslo.messaging 12.14's definitions of the [oslo_messaging_amqp] options
#: dovecote registers (that version is the last to ship them):
#: class, default, type bounds (min), secret, deprecated group.
OLD_AMQP: dict[str, tuple[type[cfg.Opt], Any, int | None, bool, str | None]] = {
    "idle_timeout": (cfg.IntOpt, 0, None, False, "amqp1"),
    "ssl": (cfg.BoolOpt, False, None, False, None),
    "ssl_ca_file": (cfg.StrOpt, "", None, False, "amqp1"),
    "ssl_cert_file": (cfg.StrOpt, "", None, False, "amqp1"),
    "ssl_key_file": (cfg.StrOpt, "", None, False, "amqp1"),
    "ssl_key_password": (cfg.StrOpt, None, None, True, "amqp1"),
    "sasl_mechanisms": (cfg.StrOpt, "", None, False, "amqp1"),
    "connection_retry_interval": (cfg.IntOpt, 1, 1, False, None),
    "connection_retry_interval_max": (cfg.IntOpt, 30, 1, False, None),
    "rpc_server_credit": (cfg.IntOpt, 100, 1, False, None),
}
#: The options dovecote's amqp1:// driver reads (besides the TLS ones).
AMQP1_DRIVER_OPTIONS = frozenset({
    "addressing", "queue_expires", "notification_pool_ttl", "amqp_durable_queues", "prefetch",
    "connect_timeout", "send_timeout", "heartbeat", "reconnect_delay", "reconnect_max_delay",
    "sasl_mechanisms", "sasl_allow_insecure",
})


def key(group: str | None) -> str:
    """The group's key in READ_BY_FACE / UNIMPLEMENTED."""
    return group or "DEFAULT"


def type_facts(opt: cfg.Opt) -> dict[str, Any]:
    kind = opt.type
    facts: dict[str, Any] = {"class": type(kind)}
    for attr in ("choices", "min", "max", "bounds"):
        if hasattr(kind, attr):
            facts[attr] = getattr(kind, attr)
    if hasattr(kind, "item_type"):
        facts["item_type"] = type(kind.item_type)
    return facts


def expected_default(group: str | None, opt: cfg.Opt) -> Any:
    """oslo's default, except the two it computes from the running process."""
    if group == _optdefs.RABBIT_GROUP and opt.name == "hostname":
        return socket.gethostname()
    if group == _optdefs.RABBIT_GROUP and opt.name == "processname":
        return os.path.basename(sys.argv[0])  # noqa: PTH119 - as oslo.messaging computes it
    return opt.default


def test_groups_are_oslos_plus_amqp_in_order() -> None:
    assert [group for group, _ in opts.list_opts()] == [
        None, "oslo_messaging_amqp", "oslo_messaging_notifications", "oslo_messaging_rabbit",
        "oslo_messaging_kafka"]
    assert {group for group, _ in OSLO} <= set(OURS)


@pytest.mark.parametrize(("group", "names"),
                         [(group, [o.name for o in options]) for group, options in OSLO])
def test_each_group_has_oslos_option_names_in_oslos_order(
        group: str | None, names: list[str]) -> None:
    assert [o.name for o in OURS[group]] == names


@pytest.mark.parametrize(("group", "theirs"), OSLO_PAIRS,
                         ids=[f"{key(g)}.{o.name}" for g, o in OSLO_PAIRS])
def test_each_option_is_defined_as_oslo_defines_it(group: str | None, theirs: cfg.Opt) -> None:
    ours = {o.name: o for o in OURS[group]}[theirs.name]
    assert type(ours) is type(theirs)
    assert type_facts(ours) == type_facts(theirs)
    assert ours.default == expected_default(group, theirs)
    assert ours.deprecated_opts == theirs.deprecated_opts
    assert ours.secret is theirs.secret
    assert ours.sample_default == theirs.sample_default
    assert ours.deprecated_for_removal is theirs.deprecated_for_removal
    assert bool(ours.deprecated_reason) == bool(theirs.deprecated_reason)
    assert ours.deprecated_since == theirs.deprecated_since
    for attr in ("dest", "mutable", "required", "positional", "short", "metavar", "advanced"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr


@pytest.mark.parametrize(("group", "theirs"), OSLO_PAIRS,
                         ids=[f"{key(g)}.{o.name}" for g, o in OSLO_PAIRS])
def test_help_is_in_dovecotes_own_words(group: str | None, theirs: cfg.Opt) -> None:
    ours = {o.name: o for o in OURS[group]}[theirs.name]
    assert ours.help
    assert ours.help != theirs.help
    alike = difflib.SequenceMatcher(None, ours.help.lower(), theirs.help.lower()).ratio()
    assert alike < MOST_ALIKE, (ours.help, theirs.help)
    if theirs.deprecated_reason:
        assert ours.deprecated_reason != theirs.deprecated_reason


def test_old_amqp_options_keep_oslo_12_definitions() -> None:
    ours = {o.name: o for o in OURS[_optdefs.AMQP_GROUP]}
    assert set(ours) == set(OLD_AMQP)
    for name, (kind, default, minimum, secret, old_group) in OLD_AMQP.items():
        opt = ours[name]
        assert type(opt) is kind, name
        assert opt.default == default, name
        assert getattr(opt.type, "min", None) == minimum, name
        assert opt.secret is secret, name
        assert opt.deprecated_for_removal is False, name
        old = [cfg.DeprecatedOpt(None, group=old_group)] if old_group else []
        assert opt.deprecated_opts == old, name


def test_the_option_lists_of_oslo_and_dovecote_match_one_to_one() -> None:
    """No option of ours is missing from oslo's list but for the amqp group."""
    theirs = {(group, o.name) for group, o in OSLO_PAIRS}
    extra = {(group, o.name) for group, o in OUR_PAIRS} - theirs
    assert {group for group, _ in extra} == {_optdefs.AMQP_GROUP}


@pytest.mark.parametrize(("group", "opt"), OUR_PAIRS,
                         ids=[f"{key(g)}.{o.name}" for g, o in OUR_PAIRS])
def test_every_option_is_accounted_for_exactly_once(group: str | None, opt: cfg.Opt) -> None:
    maps = {_optdefs.RABBIT_GROUP: _optdefs.RABBIT_TO_DRIVER,
            _optdefs.AMQP_GROUP: _optdefs.AMQP_TO_DRIVER}
    places = [
        opt.name in maps.get(key(group), {}),
        opt.name in _optdefs.UNIMPLEMENTED.get(key(group), {}),
        opt.name in _optdefs.READ_BY_FACE.get(key(group), frozenset()),
    ]
    assert places.count(True) == 1, places
    unimplemented = opt.help.startswith(NOT_IMPLEMENTED_PREFIX)
    assert unimplemented == places[1]
    if unimplemented:
        reason = _optdefs.UNIMPLEMENTED[key(group)][opt.name]
        assert opt.help == f"{NOT_IMPLEMENTED_PREFIX}{reason}{NOT_IMPLEMENTED_SUFFIX}"


def test_the_tables_name_only_registered_options() -> None:
    registered = {key(group): {o.name for o in options} for group, options in OURS.items()}
    assert set(_optdefs.RABBIT_TO_DRIVER) <= registered[_optdefs.RABBIT_GROUP]
    assert set(_optdefs.AMQP_TO_DRIVER) <= registered[_optdefs.AMQP_GROUP]
    for table in (_optdefs.UNIMPLEMENTED, _optdefs.READ_BY_FACE):
        for group, names in table.items():
            assert set(names) <= registered[group], group
    assert set(_optdefs.UNIMPLEMENTED[_optdefs.KAFKA_GROUP]) == registered[_optdefs.KAFKA_GROUP]


def test_rabbit_options_map_onto_kombu_driver_options() -> None:
    fields = {f for f in KombuOptions.__dataclass_fields__ if f != "tls"}
    targets = set(_optdefs.RABBIT_TO_DRIVER.values())
    assert targets <= fields | _tls.TLS_OPTION_NAMES, targets - fields - _tls.TLS_OPTION_NAMES
    assert len(targets) == len(_optdefs.RABBIT_TO_DRIVER)  # no two options feed one


def test_kombu_driver_takes_every_mapped_rabbit_value() -> None:
    """Each mapped option, at oslo's default and at a set value, parses."""
    defaults = {o.name: o.default for o in OURS[_optdefs.RABBIT_GROUP]}
    url = TransportURL.parse("rabbit://h:5672/")
    values = {target: defaults[name] for name, target in _optdefs.RABBIT_TO_DRIVER.items()}
    parsed = KombuOptions.parse(url, values)
    for target, value in values.items():
        if target not in _tls.TLS_OPTION_NAMES:
            assert getattr(parsed, target) == value, target
    assert KombuOptions.parse(url, {"prefetch_count": 7}).prefetch_count == 7
    assert KombuOptions.parse(url, {"rabbit_login_method": "PLAIN"}).rabbit_login_method \
        == "PLAIN"


def test_amqp_options_map_onto_amqp1_driver_options() -> None:
    """Each target is an option the amqp1:// driver reads (by name, in its source)."""
    source = inspect.getsource(amqp1_broker) + inspect.getsource(amqp1_security)
    targets = set(_optdefs.AMQP_TO_DRIVER.values())
    assert len(targets) == len(_optdefs.AMQP_TO_DRIVER)
    for target in targets:
        assert target in AMQP1_DRIVER_OPTIONS | _tls.TLS_OPTION_NAMES, target
        if target not in _tls.TLS_OPTION_NAMES:
            assert f'"{target}"' in source, target


def test_list_opts_returns_fresh_copies() -> None:
    first, second = opts.list_opts(), opts.list_opts()
    module_opts = {id(o) for _, options in _optdefs.ALL_GROUPS for o in options}
    for (_, a), (_, b) in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x is not y
            assert id(x) not in module_opts
            assert x == y
    first[0][1][0].default = 1
    assert _optdefs.DEFAULT_OPTS[0].default == 64


def test_a_config_file_reads_back_through_the_options(tmp_path: Path) -> None:
    path = tmp_path / "service.conf"
    path.write_text(
        "[DEFAULT]\n"
        "transport_url = rabbit://u:p@h:5672/\n"
        "rpc_thread_pool_size = 8\n"
        "[oslo_messaging_rabbit]\n"
        "rabbit_quorum_queue = true\n"
        "kombu_reconnect_timeout = 5\n"
        "[amqp1]\n"
        "ssl_ca_file = /etc/ca.pem\n"
        "[oslo_messaging_kafka]\n"
        "consumer_group = mine\n"
    )
    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(options, group=group)
    conf(args=[], default_config_files=[str(path)])
    assert conf.transport_url == "rabbit://u:p@h:5672/"
    assert conf.oslo_messaging_rabbit.rabbit_quorum_queue is True
    assert conf.oslo_messaging_rabbit.rabbit_ha_queues is False
    # deprecated names and groups, as oslo.messaging reads them
    assert conf.executor_thread_pool_size == 8
    assert conf.oslo_messaging_rabbit.kombu_missing_consumer_retry_timeout == 5
    assert conf.oslo_messaging_amqp.ssl_ca_file == "/etc/ca.pem"
    assert conf.oslo_messaging_kafka.consumer_group == "mine"
    assert conf.oslo_messaging_notifications.topics == ["notifications"]
    assert conf.oslo_messaging_rabbit.hostname == socket.gethostname()
