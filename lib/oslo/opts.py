"""``oslo_messaging.opts`` for dovecote.oslo: every option it may register, for
``oslo-config-generator`` and the like."""

from __future__ import annotations

import copy

from oslo_config import cfg

from ._optdefs import ALL_GROUPS

__all__ = ["list_opts"]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Every option group dovecote.oslo registers, as ``(group, options)``
    pairs, ``None`` naming ``[DEFAULT]``; mirrors ``oslo_messaging.opts.list_opts``.

    The groups: ``[DEFAULT]``, ``[oslo_messaging_amqp]`` (the options of
    oslo.messaging's removed AMQP 1.0 driver that map onto dovecote's),
    ``[oslo_messaging_notifications]``, ``[oslo_messaging_rabbit]`` and
    ``[oslo_messaging_kafka]`` (registered only, dovecote has no Kafka
    transport). The options are deep copies, as oslo.messaging returns them:
    a caller may change them without touching the ones dovecote registers.
    """
    return [(group, copy.deepcopy(opts)) for group, opts in ALL_GROUPS]
