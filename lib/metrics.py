"""``dovecote.metrics``: the public path of :mod:`dovecote.observe.metrics` (the same module)."""

import sys

from .observe import metrics

sys.modules[__name__] = metrics
