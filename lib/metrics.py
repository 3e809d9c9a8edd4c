"""``dovecote.metrics``: the public path of :mod:`dovecote.observe.metrics` (the same module)."""

import importlib
import sys

# import_module, not ``from .observe import metrics``: it imports the module again
# when it was removed from sys.modules (the package attribute would hide that).
sys.modules[__name__] = importlib.import_module("dovecote.observe.metrics")
