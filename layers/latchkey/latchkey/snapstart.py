"""Lambda SnapStart (``SnapStart: ApplyOn: PublishedVersions`` on the hot functions in template.yaml).

SnapStart runs a function's init once, snapshots the memory, and starts every later instance from that
snapshot. Whatever init created is then shared by all of them, so init must hold nothing that has to be
unique or fresh:

- nothing random is created at import (``tests/unit/test_snapstart.py`` imports every handler with the
  random sources disabled); secrets, ids and keys come from ``os.urandom`` at request time, which the
  kernel keeps unique after a restore;
- nothing time-dependent or connected is created at import either (:mod:`latchkey.services` builds
  clients, the key ring and caches on first use);
- :func:`after_restore`, registered with the runtime's ``snapshot_restore_py`` hooks, still starts each
  restored instance clean: it reseeds :mod:`random` (used only for retry jitter), drops every cached
  service (AWS clients and their credentials, the key ring, the client cache) and marks the next
  invocation as a cold start for the metrics.

``snapshot_restore_py`` ships with Lambda's Python runtime; it must not be packaged in the layer (a
second copy would hold a registry the runtime never calls). Outside Lambda, without it, :func:`register`
does nothing.
"""

from __future__ import annotations

import random


def after_restore() -> None:
    from . import services
    from .observability import metrics

    random.seed()  # from os.urandom: each restored instance gets its own sequence
    services.reset()
    metrics.mark_cold()


def register() -> bool:
    """Register :func:`after_restore` with the runtime; False when the hooks module is not there."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(after_restore)
    return True
