"""Where lukhas_fast's Prometheus metrics go.

lukhas_fast registers nothing at import.  A metric (with the reference SDK's
name, e.g. ``safety_tags_enrichment_total``, ``lukhas_drift_ema``,
``ethics_evaluations_total``) is created the first time an object with metrics
on records on it; ``LUKHAS_FAST_METRICS=0`` makes ``metrics=None`` mean off
everywhere, so nothing is ever created unless ``metrics=True`` is passed.

By default metrics go to ``prometheus_client.REGISTRY``; to keep them apart::

    from prometheus_client import CollectorRegistry
    import lukhas_fast.metrics

    reg = CollectorRegistry()
    lukhas_fast.metrics.use_registry(reg)   # before constructing monitors etc.
"""

from __future__ import annotations

from lukhas_fast._metrics import PROMETHEUS_AVAILABLE, get_registry, metrics_default, use_registry

__all__ = ["PROMETHEUS_AVAILABLE", "get_registry", "metrics_default", "use_registry"]
