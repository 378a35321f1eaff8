import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, ClassVar, Dict, FrozenSet, List, Optional, Set, Tuple, TypeVar

__all__ = [
    "SafetyTagCategory", "SafetyTag", "TaggedPlan", "SafetyTagDetector", "PIIDetector", "FinancialDetector",
    "ModelSwitchDetector", "ExternalCallDetector", "PrivilegeEscalationDetector", "GDPRDetector",
    "SafetyTagEnricher", "create_safety_tag_enricher",
]

METRICS_AVAILABLE: bool
ADVANCED_TAGS_ENABLED: bool
SAFETY_TAGS_ENRICHMENT: Any
SAFETY_TAGS_DETECTION: Any
SAFETY_TAGS_EVALUATION_TIME: Any
SAFETY_TAGS_CONFIDENCE: Any
GUARDIAN_ACTIONS_EXEMPLARS: Any

_R = TypeVar("_R")

class SafetyTagCategory(Enum):
    DATA_SENSITIVITY = 'data_sensitivity'
    SYSTEM_OPERATION = 'system_operation'
    USER_INTERACTION = 'user_interaction'
    SECURITY_RISK = 'security_risk'
    COMPLIANCE = 'compliance'
    RESOURCE_IMPACT = 'resource_impact'

@dataclass
class SafetyTag:
    name: str
    category: Any
    description: str
    confidence: float = ...
    source: str = ...
    metadata: Dict[str, Any] = ...
    def __post_init__(self) -> None: ...

@dataclass
class TaggedPlan:
    original_plan: Dict[str, Any]
    tags: List[SafetyTag]
    enrichment_time_ms: float
    enrichment_context: Dict[str, Any] = ...
    @property
    def tag_names(self) -> Set[str]: ...
    @property
    def tags_by_category(self) -> Dict[Any, List[SafetyTag]]: ...
    def has_tag(self, name: str) -> bool: ...
    def has_category(self, category: Any) -> bool: ...
    def get_tags_by_category(self, category: Any) -> List[SafetyTag]: ...

class SafetyTagDetector:
    threshold: ClassVar[float]
    tag_name: str
    category: Any
    description: str
    def __init__(self, tag_name: str, category: Any, description: str) -> None: ...
    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]: ...

class PIIDetector(SafetyTagDetector):
    pii_fields: ClassVar[FrozenSet[str]]
    email_pattern: ClassVar[re.Pattern[str]]
    ssn_pattern: ClassVar[re.Pattern[str]]
    phone_pattern: ClassVar[re.Pattern[str]]
    credit_card_pattern: ClassVar[re.Pattern[str]]
    def __init__(self) -> None: ...
class FinancialDetector(SafetyTagDetector):
    financial_fields: ClassVar[FrozenSet[str]]
    account_pattern: ClassVar[re.Pattern[str]]
    routing_pattern: ClassVar[re.Pattern[str]]
    advanced: bool
    def __init__(self, advanced: bool = ...) -> None: ...
class ModelSwitchDetector(SafetyTagDetector):
    model_keywords: ClassVar[Tuple[str, ...]]
    def __init__(self) -> None: ...
class ExternalCallDetector(SafetyTagDetector):
    url_pattern: ClassVar[re.Pattern[str]]
    def __init__(self) -> None: ...
class PrivilegeEscalationDetector(SafetyTagDetector):
    def __init__(self) -> None: ...
class GDPRDetector(SafetyTagDetector):
    advanced: bool
    def __init__(self, advanced: bool = ...) -> None: ...

class SafetyTagEnricher:
    enable_caching: bool
    advanced: bool
    cache_size: int
    cache_bytes: int
    tag_cache: Optional[Dict[Any, List[SafetyTag]]]
    cache_hits: int
    cache_misses: int
    detectors: List[SafetyTagDetector]
    def __init__(self, enable_caching: bool = ..., *, advanced: Optional[bool] = ..., cache_size: int = ...,
                 cache_bytes: int = ..., metrics: Optional[bool] = ...) -> None: ...
    def preprocess_text(self, text: Any) -> Any: ...
    def preprocess_plan(self, plan: Dict[str, Any]) -> Dict[str, Any]: ...
    def enrich_plan(self, plan: Dict[str, Any], context: Optional[Dict[str, Any]] = ...) -> TaggedPlan: ...
    def enrich_rendered(self, plan: Dict[str, Any], context: Optional[Dict[str, Any]],
                        render: Callable[[List[SafetyTag]], _R]) -> Tuple[_R, float, Dict[str, Any]]: ...
    def add_detector(self, detector: SafetyTagDetector) -> None: ...
    def get_stats(self) -> Dict[str, Any]: ...

def create_safety_tag_enricher(enable_caching: bool = ...) -> SafetyTagEnricher: ...
def preprocess_text(text: Any) -> Any: ...
def canonical_domain(url: Any) -> Any: ...
