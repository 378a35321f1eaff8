from enum import Enum
from typing import Any, Dict, List, Optional, Set

METRICS_AVAILABLE: bool
ADVANCED_TAGS_ENABLED: bool
SAFETY_TAGS_ENRICHMENT: Any
SAFETY_TAGS_DETECTION: Any
SAFETY_TAGS_EVALUATION_TIME: Any
SAFETY_TAGS_CONFIDENCE: Any
GUARDIAN_ACTIONS_EXEMPLARS: Any

class SafetyTagCategory(Enum):
    DATA_SENSITIVITY: str
    SYSTEM_OPERATION: str
    USER_INTERACTION: str
    SECURITY_RISK: str
    COMPLIANCE: str
    RESOURCE_IMPACT: str

class SafetyTag:
    name: str
    category: Any
    description: str
    confidence: float
    source: str
    metadata: Dict[str, Any]
    def __init__(self, name: str, category: Any, description: str, confidence: float = ..., source: str = ...,
                 metadata: Dict[str, Any] = ...) -> None: ...

class TaggedPlan:
    original_plan: Dict[str, Any]
    tags: List[SafetyTag]
    enrichment_time_ms: float
    enrichment_context: Dict[str, Any]
    @property
    def tag_names(self) -> Set[str]: ...
    @property
    def tags_by_category(self) -> Dict[Any, List[SafetyTag]]: ...
    def has_tag(self, name: str) -> bool: ...
    def has_category(self, category: Any) -> bool: ...
    def get_tags_by_category(self, category: Any) -> List[SafetyTag]: ...

class SafetyTagDetector:
    tag_name: str
    category: Any
    description: str
    def __init__(self, tag_name: str, category: Any, description: str) -> None: ...
    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]: ...

class PIIDetector(SafetyTagDetector):
    def __init__(self) -> None: ...
class FinancialDetector(SafetyTagDetector):
    def __init__(self, advanced: bool = ...) -> None: ...
class ModelSwitchDetector(SafetyTagDetector):
    def __init__(self) -> None: ...
class ExternalCallDetector(SafetyTagDetector):
    def __init__(self) -> None: ...
class PrivilegeEscalationDetector(SafetyTagDetector):
    def __init__(self) -> None: ...
class GDPRDetector(SafetyTagDetector):
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
    def add_detector(self, detector: SafetyTagDetector) -> None: ...
    def get_stats(self) -> Dict[str, Any]: ...

def create_safety_tag_enricher(enable_caching: bool = ...) -> SafetyTagEnricher: ...
def preprocess_text(text: Any) -> Any: ...
def canonical_domain(url: Any) -> Any: ...
