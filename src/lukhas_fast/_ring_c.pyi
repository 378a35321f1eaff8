from lukhas_fast.ring import DecimatingRing as DecimatingRing, Ring as Ring, SpscRing as SpscRing, STRATEGIES as STRATEGIES
from typing import Any, Dict
def backend_details() -> Dict[str, Any]: ...

__all__ = ["Ring", "DecimatingRing", "SpscRing", "STRATEGIES", "backend_details"]
