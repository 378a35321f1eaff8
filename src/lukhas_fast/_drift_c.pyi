from typing import Any, Dict, List, Optional, Union

from lukhas_fast.drift import (
    LANE_CFG as LANE_CFG,
    DriftConfig as DriftConfig,
    DriftMonitor as DriftMonitor,
    _cosine as _cosine,
    cosine_similarity as cosine_similarity,
    cosine_similarity_batch as cosine_similarity_batch,
)

def backend_details() -> Dict[str, Any]: ...
def _set_isa(name: str) -> str: ...
def _available_isas() -> List[str]: ...
def loads_vectors(data: Union[bytes, bytearray, memoryview]) -> Optional[Dict[str, Any]]: ...

__all__ = ["DriftConfig", "LANE_CFG", "DriftMonitor", "_cosine", "cosine_similarity", "cosine_similarity_batch", "backend_details", "loads_vectors"]
