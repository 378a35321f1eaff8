"""Size limits for data the library holds on behalf of a client.

The service keeps every frame posted to ``/consciousness/analyze`` in a
``DecimatingRing`` until it is overwritten; a frame is decoded JSON, whose
Python objects take several times the bytes of its text (a float: 2-4 bytes
of JSON, 32 as an object and its list slot).  ``check_frame`` bounds one
frame by an estimate of the memory it holds, so the ring's memory is bounded
by ``ring_memory_ceiling(capacity)``.

Defaults (change them by passing ``max_bytes``, or by setting the module
constant before the service starts):

* :data:`MAX_FRAME_BYTES` = 64 KiB per frame (estimated Python bytes);
* ring ceiling = capacity x 64 KiB: 62.5 MiB for the service's 1000 frames.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["MAX_FRAME_BYTES", "frame_bytes", "check_frame", "ring_memory_ceiling"]

#: Largest frame (estimated bytes of its Python objects) ``check_frame`` accepts.
MAX_FRAME_BYTES = 64 * 1024

_getsizeof = sys.getsizeof


def frame_bytes(obj: Any, stop_after: int = sys.maxsize) -> int:
    """Estimated bytes held by ``obj`` (``sys.getsizeof`` summed over it and
    every object it contains through dicts, lists and tuples; shared objects
    count each time).  Iterative, so any nesting depth is fine; the walk stops
    once the total exceeds ``stop_after``: time linear in min(size, limit)."""
    total = 0
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        o = pop()
        total += _getsizeof(o)
        if total > stop_after:
            return total
        t = type(o)
        if t is dict:
            for k, v in o.items():
                push(k)
                push(v)
        elif t is list or t is tuple:
            stack.extend(o)
        elif isinstance(o, dict):
            for k, v in dict.items(o):
                push(k)
                push(v)
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
    return total


def check_frame(frame: Any, max_bytes: int = -1, name: str = "frame") -> int:
    """Raise ``ValueError`` naming ``name`` if ``frame`` holds more than
    ``max_bytes`` (default :data:`MAX_FRAME_BYTES`) estimated bytes; else
    return the estimate.  Call it before storing the frame anywhere."""
    limit = MAX_FRAME_BYTES if max_bytes == -1 else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_bytes must be an int >= 1, got {max_bytes!r}")
    n = frame_bytes(frame, limit)
    if n > limit:
        raise ValueError(f"field {name!r} is too large: it holds over {limit} bytes as Python objects "
                         f"(limit {limit}; about {limit // 32} numbers)")
    return n


def ring_memory_ceiling(capacity: int, max_frame_bytes: int = -1) -> int:
    """Bytes a ring of ``capacity`` frames accepted by ``check_frame`` can hold
    (plus the ring's own slots, 8 bytes each)."""
    limit = MAX_FRAME_BYTES if max_frame_bytes == -1 else max_frame_bytes
    return capacity * (limit + 8)
