"""Safety tags: ``SafetyTagEnricher``, the six detectors, ``SafetyTag``,
``TaggedPlan`` (drop-in for ``candidate.core.ethics.safety_tags``).

On the C tier the enricher normalises with an ASCII fast path, runs the six
built-in detectors as one C pass over the plan's text and keys its LRU cache
with a compact structural encoding; the tags are the pure-Python tier's (the
reference algorithm), tag for tag.
"""

from __future__ import annotations

from lukhas_fast._backend import load as _load

_impl = _load("tags")

SafetyTagCategory = _impl.SafetyTagCategory
SafetyTag = _impl.SafetyTag
TaggedPlan = _impl.TaggedPlan
SafetyTagDetector = _impl.SafetyTagDetector
PIIDetector = _impl.PIIDetector
FinancialDetector = _impl.FinancialDetector
ModelSwitchDetector = _impl.ModelSwitchDetector
ExternalCallDetector = _impl.ExternalCallDetector
PrivilegeEscalationDetector = _impl.PrivilegeEscalationDetector
GDPRDetector = _impl.GDPRDetector
SafetyTagEnricher = _impl.SafetyTagEnricher
create_safety_tag_enricher = _impl.create_safety_tag_enricher
preprocess_text = _impl.preprocess_text
canonical_domain = _impl.canonical_domain
METRICS_AVAILABLE = _impl.METRICS_AVAILABLE
ADVANCED_TAGS_ENABLED = _impl.ADVANCED_TAGS_ENABLED
SAFETY_TAGS_ENRICHMENT = _impl.SAFETY_TAGS_ENRICHMENT
SAFETY_TAGS_DETECTION = _impl.SAFETY_TAGS_DETECTION
SAFETY_TAGS_EVALUATION_TIME = _impl.SAFETY_TAGS_EVALUATION_TIME
SAFETY_TAGS_CONFIDENCE = _impl.SAFETY_TAGS_CONFIDENCE
GUARDIAN_ACTIONS_EXEMPLARS = _impl.GUARDIAN_ACTIONS_EXEMPLARS

__all__ = [
    "SafetyTagCategory",
    "SafetyTag",
    "TaggedPlan",
    "SafetyTagDetector",
    "PIIDetector",
    "FinancialDetector",
    "ModelSwitchDetector",
    "ExternalCallDetector",
    "PrivilegeEscalationDetector",
    "GDPRDetector",
    "SafetyTagEnricher",
    "create_safety_tag_enricher",
]
