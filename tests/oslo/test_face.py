"""dovecote.oslo: oslo.messaging's names and signatures, its configuration,
its unit-test support and its semantics, checked against the real oslo.messaging."""

from __future__ import annotations

import importlib
import inspect
import uuid
import warnings
from typing import Any

import pytest
from oslo_config import cfg

import dovecote
import dovecote.oslo as om
from dovecote.oslo import _config, conffixture, opts

pytestmark = pytest.mark.interop

MODULES = ["", ".rpc", ".rpc.client", ".rpc.dispatcher", ".rpc.server", ".notify",
           ".conffixture", ".opts", ".exceptions", ".serializer", ".transport", ".server",
           ".dispatcher", ".target", ".notify.notifier", ".notify.listener",
           ".notify.dispatcher", ".notify.filter"]
#: Built by dovecote's factories, never by an application: other constructors.
OWN_CONSTRUCTORS = {"MessageHandlingServer", "Transport"}


def _public(module: Any) -> list[str]:
    """``__all__``, or for a module without one the package-level names it defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    if module.__name__ == "oslo_messaging":
        return [n for n in dir(module) if not n.startswith("_")]
    import oslo_messaging

    exported = {n for n in dir(oslo_messaging) if not n.startswith("_")}
    return [n for n in dir(module) if n in exported
            and getattr(getattr(module, n), "__module__", None) == module.__name__]


@pytest.mark.parametrize("suffix", MODULES)
def test_every_public_name_of_oslo_messaging_is_there_with_its_parameters(suffix: str) -> None:
    real = importlib.import_module("oslo_messaging" + suffix)
    face = importlib.import_module("dovecote.oslo" + suffix)
    for name in _public(real):
        assert hasattr(face, name), f"dovecote.oslo{suffix} lacks {name}"
        if name in OWN_CONSTRUCTORS or inspect.ismodule(getattr(real, name)):
            continue
        try:
            theirs = inspect.signature(getattr(real, name)).parameters
        except (TypeError, ValueError):
            continue
        ours = inspect.signature(getattr(face, name)).parameters
        assert list(ours)[:len(theirs)] == list(theirs), (suffix, name)
        for extra in list(ours)[len(theirs):]:  # dovecote's own: never required
            param = ours[extra]
            assert param.default is not param.empty or param.kind in (
                param.KEYWORD_ONLY, param.VAR_KEYWORD), (suffix, name, extra)


def test_target_is_assignable_callable_and_compares_as_oslos() -> None:
    target = om.Target(topic="t", namespace="N", version="7.5")
    copy = target()
    assert copy == target
    assert copy is not target
    copy.version = "7.6"
    assert copy != target
    assert copy.version == "7.6"
    copy.namespace = "M"
    assert copy.accepted_namespaces == ("M",)
    assert isinstance(target, dovecote.Target)
    assert len({target, target()}) == 2  # hashed by identity, as oslo's


@pytest.fixture
def conf() -> Any:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


class Adder:
    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b


def test_conffixture_with_fake_url_serves_calls_in_process(conf: Any) -> None:
    fixture = conffixture.ConfFixture(conf)
    fixture.setUp()
    try:
        fixture.transport_url = "fake:/"
        fixture.response_timeout = 5
        transport = om.get_rpc_transport(conf)
        target = om.Target(topic="t", server="s")
        server = om.get_rpc_server(transport, target, [Adder()], "threading")
        server.start()
        try:
            client = om.get_rpc_client(transport, target)
            assert client.call({}, "add", a=2, b=3) == 5
            assert client.prepare(timeout=1)._options.timeout == 1
            with pytest.raises(om.RemoteError):
                client.prepare(version="9.0").call({}, "add", a=1, b=1)
        finally:
            server.stop()
            server.wait()
            transport.cleanup()
        conf.set_override("notification_driver", ["test"])  # the legacy name
        assert conf.oslo_messaging_notifications.driver == ["test"]
    finally:
        fixture.cleanUp()
    assert conf.transport_url == "rabbit://"


def test_executor_eventlet_warns_and_runs_on_threads_unknown_fails(conf: Any) -> None:
    transport = om.get_rpc_transport(conf, url="fake:/")
    try:
        with pytest.warns(DeprecationWarning, match="eventlet"):
            server = om.get_rpc_server(transport, om.Target(topic="t", server="s"), [Adder()],
                                       "eventlet")
        assert server.executor == "threading"
        assert server.max_workers == 64  # [DEFAULT] executor_thread_pool_size
        with pytest.raises(om.ExecutorLoadFailure):
            om.get_rpc_server(transport, om.Target(topic="t"), [Adder()], "gevent")
    finally:
        transport.cleanup()


def test_override_pool_size_sizes_one_start_only(conf: Any) -> None:
    """``start(override_pool_size=N)`` runs N workers for that start; a later
    ``start()`` gets ``executor_thread_pool_size`` again, as in oslo.messaging."""
    transport = om.get_rpc_transport(conf, url="fake:/")
    server = om.get_rpc_server(transport, om.Target(topic="t", server="s"), [Adder()],
                               "threading")

    def workers() -> int:
        return sum(1 for actor in server.actors() if actor["kind"] == "worker")

    try:
        server.start(override_pool_size=3)
        assert workers() == 3
        server.stop()
        server.wait()
        server.start()
        assert workers() == 64  # [DEFAULT] executor_thread_pool_size
        with pytest.raises(ValueError, match="at least 1"):
            server.start(override_pool_size=0)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_an_endpoint_whose_target_is_not_a_target_is_refused(conf: Any) -> None:
    class Bad:
        def target(self, ctxt: Any) -> None: ...

    transport = om.get_rpc_transport(conf, url="fake:/")
    try:
        with pytest.raises(TypeError, match="target"):
            om.get_rpc_server(transport, om.Target(topic="t"), [Bad()], "threading")
        with pytest.raises(TypeError, match="target"):
            dovecote.get_rpc_server(transport, dovecote.Target(topic="t"), [Bad()])
    finally:
        transport.cleanup()


def test_rabbit_section_becomes_driver_options_and_unimplemented_ones_warn(conf: Any) -> None:
    _config.register_opts(conf)
    conf.set_override("rabbit_quorum_queue", True, group="oslo_messaging_rabbit")
    conf.set_override("rabbit_qos_prefetch_count", 7, group="oslo_messaging_rabbit")
    conf.set_override("kombu_compression", "gzip", group="oslo_messaging_rabbit")
    _config.reset_warnings()
    url = om.TransportURL.parse(conf, "rabbit://h:5672/?rabbit_quorum_queue=false")
    with pytest.warns(om.UnimplementedOptionWarning, match="kombu_compression"):
        options = _config.driver_options(conf, url)
    assert options == {"prefetch_count": 7}  # the URL's own value wins
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _config.driver_options(conf, url)  # warned once per process


def test_list_opts_registers_every_option_oslo_registers() -> None:
    import oslo_messaging.opts

    ours = {group: {o.dest for o in options} for group, options in opts.list_opts()}
    for group, options in oslo_messaging.opts.list_opts():
        assert {o.dest for o in options} <= ours[group], group


def test_set_transport_defaults_changes_the_control_exchange(conf: Any) -> None:
    om.set_transport_defaults("nova")
    try:
        transport = om.get_rpc_transport(conf, url="fake:/")
        assert conf.control_exchange == "nova"
        transport.cleanup()
    finally:
        om.set_transport_defaults("openstack")


def test_notifier_takes_driver_topics_and_retry_from_the_config(conf: Any) -> None:
    _config.register_opts(conf)
    conf.set_override("driver", ["test"], group="oslo_messaging_notifications")
    conf.set_override("topics", ["audit"], group="oslo_messaging_notifications")
    transport = om.get_notification_transport(conf, url="fake:/")
    try:
        dovecote.reset_test_notifications()
        notifier = om.Notifier(transport, "svc.host")
        assert notifier.topics == ["audit"]
        assert notifier.drivers == ["test"]
        event = f"thing.{uuid.uuid4().hex}"
        notifier.info({}, event, {"a": 1})
        assert [n["message"]["event_type"] for n in dovecote.get_test_notifications()] == [event]
        conf.set_override("driver", [], group="oslo_messaging_notifications")
        assert not om.Notifier(transport, "svc.host").is_enabled()
    finally:
        transport.cleanup()


def test_routing_driver_routes_by_event_type(conf: Any, tmp_path: Any) -> None:
    routes = tmp_path / "routing.yaml"
    routes.write_text("group_1:\n  test:\n    accepted_events: ['compute.*']\n")
    _config.register_opts(conf)
    transport = om.get_notification_transport(conf, url="fake:/")
    try:
        notifier = om.Notifier(transport, "svc", driver="routing")
        conf.set_override("routing_config", str(routes), group="oslo_messaging_notifications")
        dovecote.reset_test_notifications()
        notifier.info({}, "compute.start", {})
        notifier.info({}, "network.start", {})
        sent = [n["message"]["event_type"] for n in dovecote.get_test_notifications()]
        assert sent == ["compute.start"]
    finally:
        transport.cleanup()


def test_oslo_config_generator_documents_every_group(tmp_path: Any) -> None:
    import shutil
    import subprocess

    tool = shutil.which("oslo-config-generator")
    assert tool, "oslo-config-generator comes with oslo.config"
    out = subprocess.run([tool, "--namespace", "dovecote.oslo"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    for group in ("[DEFAULT]", "[oslo_messaging_rabbit]", "[oslo_messaging_notifications]",
                  "[oslo_messaging_amqp]", "[oslo_messaging_kafka]"):
        assert group in out
    assert "#rabbit_quorum_queue = false" in out


def test_prefetch_zero_keeps_dovecotes_bound(conf: Any) -> None:
    _config.register_opts(conf)
    conf.set_override("rabbit_qos_prefetch_count", 0, group="oslo_messaging_rabbit")
    url = om.TransportURL.parse(conf, "rabbit://h:5672/")
    assert "prefetch_count" not in _config.driver_options(conf, url)


def test_each_conffixture_gets_fresh_in_process_brokers(conf: Any) -> None:
    from dovecote.drivers.memory import _broker

    before = _broker.get_broker("")
    fixture = conffixture.ConfFixture(conf, transport_url="fake:/")
    fixture.setUp()
    try:
        assert _broker.get_broker("") is not before
    finally:
        fixture.cleanUp()
    assert _broker.get_broker("") is before


def test_a_scheme_without_a_driver_is_a_driver_load_failure(conf: Any) -> None:
    with pytest.raises(om.DriverLoadFailure, match="kafka"):
        om.get_transport(conf, url="kafka://h:9092/")
    with pytest.raises(dovecote.InvalidTransportURL, match="no driver for scheme"):
        dovecote.get_transport("kafka://h:9092/")


def test_a_fresh_config_read_from_a_file_is_enough_for_every_factory(tmp_path: Any) -> None:
    """No option registered beforehand: the factories register what they read
    (``transport_url`` first of all), as oslo.messaging's do."""
    config = tmp_path / "service.conf"
    config.write_text("[DEFAULT]\ntransport_url = fake:/\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(config)])
    for factory in (om.get_transport, om.get_rpc_transport, om.get_notification_transport):
        transport = factory(conf)
        try:
            assert transport.conf is conf
            assert transport.url.scheme == "fake"
        finally:
            transport.cleanup()
