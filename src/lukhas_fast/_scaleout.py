"""The service past one process: shared drift state, msgpack bodies, workers.

Pieces the service (:mod:`lukhas_fast.service`) plugs in:

* :class:`RedisDriftStore` -- the service's drift store (``update``,
  ``lane_state``, ``snapshot``) on :class:`~lukhas_fast.drift.RedisLaneState`:
  every worker and replica pointed at the same store shares each lane's
  window and EMA (``serve --state redis://host:port/db``).  Store errors raise
  :class:`~lukhas_fast.drift.LaneStateUnavailable`, which the service answers
  with 503 and ``Retry-After``.
* :func:`decode_msgpack` / :func:`wants_msgpack` / :func:`msgpack_response`
  -- ``Content-Type: application/msgpack`` request bodies (``bin`` vectors read
  in place when aligned, see :mod:`lukhas_fast._msgvec`) and msgpack answers for
  ``Accept: application/msgpack``.
* :func:`worker_section` -- the ``worker`` / ``state`` entries of ``/metrics``.
* :func:`prometheus_exposition` -- one scrape for all workers
  (prometheus_client's multiprocess mode when the supervisor set
  ``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from lukhas_fast import _msgvec
from lukhas_fast._drift_state import LaneBatcher, LaneStateUnavailable, RedisLaneState, SharedDriftMonitor, redact
from lukhas_fast._workers import worker_info

__all__ = ["RedisDriftStore", "LaneStateUnavailable", "decode_msgpack", "is_msgpack", "is_msgpack_type", "wants_msgpack",
           "accepts_msgpack", "msgpack_response",
           "worker_section", "prometheus_exposition", "MSGPACK_TYPE"]

MSGPACK_TYPE = _msgvec.MSGPACK_TYPE


class RedisDriftStore:
    """RedisDriftStore(url, *, prefix="lukhas_fast:drift:", timeout=5.0)

    The service's drift store on a shared Redis/Valkey (see
    :class:`~lukhas_fast.drift.RedisLaneState`): one atomic script call per
    ``/drift/analyze``, the cosine computed in this process.  Bad vectors
    raise ``TypeError``/``ValueError`` before the store is touched; an
    unreachable store raises :class:`LaneStateUnavailable` (never a silent
    fall back to local state).
    """

    shared = True

    def __init__(self, url: str, *, prefix: str = "lukhas_fast:drift:", timeout: float = 5.0) -> None:
        self.state = RedisLaneState(url, prefix=prefix, timeout=timeout)
        self._lanes: Dict[str, Tuple[SharedDriftMonitor, LaneBatcher]] = {}

    def _lane(self, lane: str) -> Tuple[SharedDriftMonitor, LaneBatcher]:
        entry = self._lanes.get(lane)
        if entry is None:
            m = SharedDriftMonitor(lane, state=self.state)
            entry = self._lanes[lane] = (m, LaneBatcher(self.state, m.lane, m.cfg))
        return entry

    async def update(self, lane: str, intent: Any, action: Any) -> Dict[str, Any]:
        """``DriftMonitor(lane).update(intent, action)`` against the shared lane state.

        Concurrent requests for a lane share script calls (:class:`LaneBatcher`):
        while one call is in flight the next ones queue and go together, in
        arrival order, each answered exactly as if applied one by one."""
        m, batcher = self._lane(lane)
        d = m.drift(intent, action)  # the checks raise here, before the store is touched
        n, ema = await batcher.submit(d)
        return m._result(d, n, ema)

    async def lane_state(self, lane: str) -> Dict[str, Any]:
        """``{"lane", "ema", "n", "total_analyses"}`` of one lane, read from the store."""
        ema, n, total = (await self.state.astats([lane])).get(lane, (0.0, 0, 0))
        return {"lane": lane, "ema": ema, "n": n, "total_analyses": total}

    async def snapshot(self) -> Dict[str, Dict[str, Any]]:
        """``lane_state`` of every configured lane present in the store (one round trip)."""
        from lukhas_fast.drift import LANE_CFG

        stats = await self.state.astats(list(LANE_CFG))
        return {lane: {"lane": lane, "ema": e, "n": n, "total_analyses": t} for lane, (e, n, t) in stats.items()}

    def describe(self) -> Dict[str, Any]:
        """``{"backend": "redis", "shared": True, "url": <without password>}``."""
        return {"backend": "redis", "shared": True, "url": redact(self.state.url)}

    async def aclose(self) -> None:
        """Close the store connections (on the service's loop)."""
        await self.state.aclose()
        self.state.close()


# -- msgpack bodies and answers -------------------------------------------------------------

def decode_msgpack(raw: bytes, config: Any = None) -> Any:
    """A msgpack request body (``bin`` vectors as views, or aligned copies); errors as the service's 400."""
    try:
        return _msgvec.loads_drift(raw)
    except _msgvec.MsgpackError as exc:
        from lukhas_fast.service import BadRequest

        raise BadRequest(str(exc), exc.field) from None


def is_msgpack(request: Any) -> bool:
    """True when the request body is msgpack (``Content-Type: application/msgpack``, any parameters)."""
    return is_msgpack_type(request.headers.get("Content-Type"))


def is_msgpack_type(ctype: Optional[str]) -> bool:
    """True when the ``Content-Type`` value ``ctype`` (or None) names msgpack, with any parameters."""
    if ctype is None:
        return False
    return ctype == MSGPACK_TYPE or ctype.split(";", 1)[0].strip().lower() == MSGPACK_TYPE


def wants_msgpack(request: Any) -> bool:
    """True when the request's ``Accept`` header asks for msgpack."""
    return accepts_msgpack(request.headers.get("Accept"))


def accepts_msgpack(accept: Optional[str]) -> bool:
    """True when the ``Accept`` value ``accept`` (or None) asks for msgpack."""
    return accept is not None and MSGPACK_TYPE in accept


def msgpack_response(data: Any, status: int = 200) -> Any:
    """An aiohttp response with ``data`` as msgpack."""
    global _Response
    if _Response is None:  # aiohttp is imported on first use (the library works without it)
        from aiohttp.web import Response as _Response
    return _Response(body=_msgvec.dumps(data), status=status, headers=_MSGPACK_HEADERS)


_Response: Any = None


_MSGPACK_HEADERS = {"Content-Type": MSGPACK_TYPE}


# -- workers -----------------------------------------------------------------------------------

def worker_section(store: Any) -> Dict[str, Any]:
    """``{"worker": {...}, "state": {...}}`` for ``/metrics``: which worker answered, whether state is shared."""
    w = worker_info()
    describe = getattr(store, "describe", None)
    state = describe() if describe is not None else {"backend": "in-process", "shared": False}
    return {"worker": {"id": w.id, "pid": w.pid, "workers": w.count}, "state": state}


def prometheus_exposition() -> Tuple[bytes, str]:
    """(body, content type) of a Prometheus scrape: this process's registry, or -- under the
    supervisor (``PROMETHEUS_MULTIPROC_DIR`` set) -- every worker's metrics merged."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
