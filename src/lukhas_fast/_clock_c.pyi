from typing import Any, Dict
from lukhas_fast.clock import Ticker as Ticker, create_consciousness_ticker as create_consciousness_ticker
from lukhas_fast.consciousness_ticker import ConsciousnessTicker as ConsciousnessTicker
def backend_details() -> Dict[str, Any]: ...

__all__ = ["Ticker", "create_consciousness_ticker", "ConsciousnessTicker", "backend_details"]
