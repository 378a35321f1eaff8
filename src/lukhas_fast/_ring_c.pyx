"""C tier of the rings (placeholder while the extension types are written)."""
from lukhas_fast._ring_py import Ring, DecimatingRing, SpscRing, STRATEGIES

def backend_details():
    return {"impl": "placeholder"}
