"""``dovecote.tracing``: the public path of :mod:`dovecote.observe.tracing` (the same module)."""

import sys

from .observe import tracing

sys.modules[__name__] = tracing
