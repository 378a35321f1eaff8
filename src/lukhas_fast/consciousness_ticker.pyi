from typing import Any, Optional

from lukhas_fast.clock import Ticker
from lukhas_fast.ring import Ring

LANE: str
PROM: bool
TICK: Any
TICKS_DROPPED: Any
SUB_EXC: Any
__all__ = ["ConsciousnessTicker", "PROM", "TICK", "TICKS_DROPPED", "SUB_EXC", "LANE"]

class ConsciousnessTicker:
    ticker: Ticker
    buffer: Ring
    cap: int
    lane: str
    frames_dropped: int
    def __init__(self, fps: float = ..., cap: int = ..., *, metrics: Optional[bool] = ...) -> None: ...
    @property
    def metrics_enabled(self) -> bool: ...
    def start(self, seconds: float = ...) -> None: ...
    def stop(self) -> None: ...
