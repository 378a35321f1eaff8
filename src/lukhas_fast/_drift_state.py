"""Drift lane state shared through Redis (or Valkey): :class:`RedisLaneState`.

One :class:`~lukhas_fast.drift.DriftMonitor` per process keeps its window and
EMA in that process: two workers (or two replicas behind a load balancer) then
each see part of the traffic and decide differently.  Here each lane's window
and EMA live in the store instead, and one server-side Lua script applies an
update atomically in one round trip:

* the cosine still runs in-process, in the active tier's kernel (the C SIMD
  kernel on the C tier), through a private metrics-off ``DriftMonitor`` whose
  own state is never read -- so the drift, the input checks and the error
  messages are exactly those of ``DriftMonitor.update``;
* only the drift scalar travels (as its shortest round-trip decimal, which the
  server's ``strtod`` reads back to the same double);
* the script appends it to the lane's window (trimmed to ``cfg.window``) and
  computes ``ema = alpha * drift + (1 - alpha) * ema`` in IEEE doubles, the
  same two multiplies and one add as ``DriftMonitor.update``, and returns the
  EMA as ``%.17g`` (exact);
* the guardian decision is made here from that EMA with the lane's thresholds.

So any number of processes, on any number of machines, updating a lane through
:class:`SharedDriftMonitor` get exactly the results of one in-process
``DriftMonitor`` fed the same updates in the order the store applied them.

Store errors (connection refused, timeout, a server still loading its data)
raise :class:`LaneStateUnavailable`; nothing falls back to local state.  The
client reconnects by itself: each command gets one retry on a fresh
connection, and the script is re-sent when a restarted server has lost it.

Requires the ``redis`` package (``pip install "lukhas_fast[redis]"``, which
also installs ``hiredis`` for the reply parser).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lukhas_fast import _metrics

__all__ = ["LaneStateUnavailable", "RedisLaneState", "SharedDriftMonitor", "LaneBatcher", "LUA_UPDATE"]

logger = logging.getLogger("lukhas_fast.drift")

GUARDIAN_NAMES = ("allow", "warn", "block")

#: How many of a lane's last update calls the store remembers by id (see
#: LUA_UPDATE): a call sent again after a lost reply is recognised while fewer
#: than this many other calls on its lane came in between.  A retry follows its
#: lost reply by a reconnect (milliseconds); ~60 bytes of store memory each.
IDS_KEPT = 2048

#: How many forks this process descends from (counted in the child, see _call_id):
#: a forked copy of a RedisLaneState notices it without a getpid() system call per update.
_FORKS = 0


def _forked() -> None:
    global _FORKS
    _FORKS += 1


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_forked)

#: The update script.  KEYS[1]: the lane's hash (field ``ema``; the hash also
#: counts updates, field ``total``), KEYS[2]: its window list, KEYS[3] and KEYS[4]:
#: the ids of its last ``IDS_KEPT`` calls (a hash id -> "window length before,
#: EMA before" and a list of the ids, oldest first).  ARGV[1]: alpha, ARGV[2]:
#: window size, ARGV[3]: the call's id ('' for none), ARGV[4..]: drifts in order.
#: Returns {window length before, ema after each drift as %.17g ...}.
#:
#: The id makes a call idempotent: a client that lost the reply of a call the
#: server had applied (its connection dropped after sending) sends the same call
#: again, and the script answers it from the state the first one started from
#: -- the same reply, nothing applied twice.
#: Redis's Lua numbers are C doubles; ``tonumber`` is ``strtod`` and
#: ``string.format('%.17g')`` is ``sprintf``: both exact for doubles.
LUA_UPDATE = """
local alpha = tonumber(ARGV[1])
local beta = 1.0 - alpha
local cap = tonumber(ARGV[2])
local id = ARGV[3]
local first = 4
local last = #ARGV
local seen = false
if id ~= '' then
  seen = redis.call('HGET', KEYS[3], id)
end
local n, ema0
if seen then
  local sp = string.find(seen, ' ', 1, true)
  n, ema0 = tonumber(string.sub(seen, 1, sp - 1)), string.sub(seen, sp + 1)
else
  n, ema0 = redis.call('LLEN', KEYS[2]), redis.call('HGET', KEYS[1], 'ema') or '0'
end
local ema = tonumber(ema0)
local out = {n}
for i = first, last do
  ema = alpha * tonumber(ARGV[i]) + beta * ema
  out[#out + 1] = string.format('%.17g', ema)
end
if seen or last < first then
  return out
end
-- only the drifts that can stay in the window are pushed, in chunks
-- (unpack() is bounded by the Lua C stack)
local from = math.max(first, last - cap + 1)
while from <= last do
  local to = math.min(from + 999, last)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, from, to))
  from = to + 1
end
redis.call('LTRIM', KEYS[2], -cap, -1)
redis.call('HSET', KEYS[1], 'ema', out[#out])
redis.call('HINCRBY', KEYS[1], 'total', last - first + 1)
if id ~= '' then
  redis.call('HSET', KEYS[3], id, n .. ' ' .. ema0)
  if redis.call('RPUSH', KEYS[4], id) > """ + str(IDS_KEPT) + """ then
    redis.call('HDEL', KEYS[3], redis.call('LPOP', KEYS[4]))
  end
end
return out
"""

#: Replace a lane's state (``load_snapshot``): ARGV[1] ema, ARGV[2] window
#: size, ARGV[3..] window values.
LUA_LOAD = """
redis.call('DEL', KEYS[2])
local cap = tonumber(ARGV[2])
local first = math.max(3, #ARGV - cap + 1)
local from = first
while from <= #ARGV do
  local to = math.min(from + 999, #ARGV)
  redis.call('RPUSH', KEYS[2], unpack(ARGV, from, to))
  from = to + 1
end
redis.call('HSET', KEYS[1], 'ema', ARGV[1])
return redis.call('LLEN', KEYS[2])
"""


class LaneStateUnavailable(ConnectionError):
    """The shared lane store cannot be reached (or is not ready); nothing was updated locally.

    ``retry_after`` is a hint in seconds (the service sends it as ``Retry-After``).
    """

    retry_after = 1


def _redis() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "RedisLaneState needs the 'redis' package: pip install 'lukhas_fast[redis]'"
        ) from None
    return redis


def _store_errors() -> Tuple[type, ...]:
    r = _redis()
    # BusyLoadingError is a ConnectionError subclass; ReadOnlyError: a replica.
    return (r.exceptions.ConnectionError, r.exceptions.TimeoutError, r.exceptions.ReadOnlyError)


def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str like 'redis://host:6379/0', got {type(url).__name__}")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"url must start with redis://, rediss:// or unix://, got {url!r}")
    return url


def redact(url: str) -> str:
    """The URL without its password (for logs and ``/metrics``)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def _pack_command(args: Sequence[Any]) -> bytes:
    """One command in RESP (what the client's ``pack_command`` makes): an array of bulk
    strings; ``str`` arguments in UTF-8, others (ints) as their decimal text."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if type(a) is str:
            a = a.encode()
        elif type(a) is not bytes:
            a = str(a).encode()  # (ints: decimal, as the client's encoder writes them)
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class RedisLaneState:
    """RedisLaneState(url, *, prefix="lukhas_fast:drift:", timeout=5.0, connect_timeout=1.0)

    Drift lane state (window + EMA per lane) kept in Redis or Valkey and
    updated atomically by a server-side script.  Use it through
    :meth:`monitor` (a :class:`SharedDriftMonitor` per lane)::

        from lukhas_fast.drift import RedisLaneState

        state = RedisLaneState("redis://127.0.0.1:6379/0")
        mon = state.monitor("prod")           # in every process
        r = mon.update(intent, action)        # {"lane", "drift", "ema", "guardian", "n"}

    ``url``: ``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``).
    ``prefix``: key prefix; a lane's keys are ``<prefix>{<lane>}`` (a hash,
    field ``ema``) and ``<prefix>{<lane>}:w`` (the window list, oldest first),
    hash-tagged so both map to one cluster slot; ``<prefix>{<lane>}:ids`` and
    ``:idq`` remember the ids of the lane's last 2048 update calls, so that a
    call sent again after its reply was lost is not applied twice (exactly once:
    see :data:`LUA_UPDATE`).  ``timeout``: seconds to wait for a reply;
    ``connect_timeout``: seconds to wait for a connection.

    Thread-safe (redis-py's connection pool).  The ``a*`` coroutines use a
    separate ``redis.asyncio`` client bound to the first event loop that uses
    it; call :meth:`aclose` on that loop when done.  Processes that fork must
    create their own instance after the fork.
    """

    def __init__(self, url: str, *, prefix: str = "lukhas_fast:drift:", timeout: float = 5.0,
                 connect_timeout: float = 1.0) -> None:
        self.url = _check_url(url)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        for name, v in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        redis = _redis()
        self.prefix = prefix
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self._errors = _store_errors()
        self._client = redis.Redis.from_url(url, **self._client_kwargs(redis))
        self._update = self._client.register_script(LUA_UPDATE)
        self._load = self._client.register_script(LUA_LOAD)
        self._aclient: Any = None
        self._aupdate: Any = None
        self._aconn: Any = None  # _aapply_raw's own connection, and its lock
        self._aconn_lock: Optional[asyncio.Lock] = None
        self._heads: Dict[Tuple[str, float, int], bytes] = {}
        self._sha = hashlib.sha1(LUA_UPDATE.encode()).hexdigest().encode()
        self._alock = threading.Lock()
        self._forks = _FORKS
        self._id_base = os.urandom(8).hex() + "-"  # (the ids of this instance's calls: see _call_id)
        self._ids = itertools.count()

    def _client_kwargs(self, redis: Any) -> Dict[str, Any]:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One retry on a fresh connection: a pooled connection that died with a
        # restarted server is replaced transparently; a server that is down
        # fails fast (no exponential backoff inside a request).
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(NoBackoff(), 1),
            "retry_on_error": [redis.exceptions.ConnectionError],
            "health_check_interval": 0,
        }

    def __repr__(self) -> str:
        return f"RedisLaneState({redact(self.url)!r}, prefix={self.prefix!r})"

    @property
    def shared(self) -> bool:
        """Always True: the state is shared by every process using the same store and prefix."""
        return True

    def keys(self, lane: str) -> Tuple[str, str]:
        """The (hash, window list) key names of a lane."""
        base = f"{self.prefix}{{{lane}}}"
        return base, base + ":w"

    def _update_keys(self, lane: str) -> Tuple[str, str, str, str]:
        """The keys of an update call: the lane's two, and the hash and list of the ids of its
        last calls (same hash tag: one cluster slot)."""
        base = f"{self.prefix}{{{lane}}}"
        return base, base + ":w", base + ":ids", base + ":idq"

    def _call_id(self) -> str:
        """A new id for one update call, sent again as is by its retries (see LUA_UPDATE).

        Unique per instance and process: a random base, and a counter (``next`` on an
        ``itertools.count`` is atomic under the GIL).  A forked copy of an instance takes a
        new base (``_FORKS`` counts forks in the child), since two processes sending the
        same id would make the second call look like a retry of the first and drop it."""
        if self._forks != _FORKS:
            self._id_base, self._forks = os.urandom(8).hex() + "-", _FORKS
        return f"{self._id_base}{next(self._ids):x}"

    def monitor(self, lane: Optional[str] = None, *, metrics: Optional[bool] = None) -> "SharedDriftMonitor":
        """A :class:`SharedDriftMonitor` for ``lane`` (resolved like ``DriftMonitor(lane)``)."""
        return SharedDriftMonitor(lane, state=self, metrics=metrics)

    # -- the atomic update ---------------------------------------------------------
    @staticmethod
    def _args(alpha: float, window: int, call_id: str, drifts: Sequence[float]) -> List[Any]:
        # repr(float) is the shortest decimal that reads back to the same double.
        return [repr(float(alpha)), window, call_id, *[repr(float(d)) for d in drifts]]

    def apply(self, lane: str, alpha: float, window: int, drifts: Sequence[float]) -> Tuple[int, List[float]]:
        """Apply ``drifts`` to ``lane`` in one atomic script call: (window length, EMA after each).

        Exactly once, also when the client sends the call again after a connection error
        (the reply of a call the server applied may be what was lost): the call carries an
        id, and the store answers a call it has seen from the state it saw it in."""
        try:
            out = self._update(keys=self._update_keys(lane), args=self._args(alpha, window, self._call_id(), drifts))
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc
        return min(window, int(out[0]) + len(drifts)), [float(x) for x in out[1:]]

    def _async_client(self) -> Any:
        with self._alock:
            if self._aclient is None:
                import redis.asyncio as aredis

                redis = _redis()
                self._aclient = aredis.Redis.from_url(self.url, **self._client_kwargs(redis))
                self._aupdate = self._aclient.register_script(LUA_UPDATE)
            return self._aupdate

    async def aapply(self, lane: str, alpha: float, window: int, drifts: Sequence[float]) -> Tuple[int, List[float]]:
        """:meth:`apply` on the asyncio client (for event loops, e.g. the service)."""
        n_before, emas = await self._aapply_raw(lane, alpha, window, drifts)
        return min(window, n_before + len(drifts)), emas

    async def _aapply_raw(self, lane: str, alpha: float, window: int,
                          drifts: Sequence[float]) -> Tuple[int, List[float]]:
        """(window length *before* the call, EMA after each drift).

        The script call goes over a connection of this state's own, made by the
        asyncio client's connection class from its pool's settings (the same host,
        credentials, TLS and reply parser, hiredis when installed), one call at a
        time: the command is packed here, sent, and its reply read with the reply
        timeout.  That is the client's own command path without its per-command
        dispatch (pool checkout and release, retry wrapper, argument encoders,
        reply callbacks), which cost ~480k instructions a call, several times the
        request it serves.  The client's semantics are kept: one retry on a fresh
        connection after a connection error, and the script sent again (``EVAL``)
        when the server answers that it does not have it (a restarted server).  Every
        send of the call carries the same id: a retry after a lost reply is answered
        without applying the drifts twice (see LUA_UPDATE)."""
        conn = self._aconn if self._aconn is not None else self._new_aconn()
        # the command's fixed part (script, keys, alpha, window) packed once per lane and settings
        head = self._heads.get((lane, alpha, window))
        if head is None:
            if len(self._heads) >= 256:  # (bounded: lanes may be any strings)
                self._heads.clear()
            head = self._heads[(lane, alpha, window)] = _pack_command(
                (b"EVALSHA", self._sha, b"4", *self._update_keys(lane), repr(float(alpha)), window))[4:]  # (no "*9\r\n")
        call_id = self._call_id()
        tail = [call_id.encode(), *[repr(float(d)).encode() for d in drifts]]
        evalsha = b"".join([b"*%d\r\n" % (9 + len(tail)), head, *[b"$%d\r\n%s\r\n" % (len(t), t) for t in tail]])
        lock = self._aconn_lock
        if lock is None:
            lock = self._aconn_lock = asyncio.Lock()
        try:
            async with lock:
                out = await self._acall(conn, evalsha, lambda: _pack_command(
                    (b"EVAL", LUA_UPDATE, b"4", *self._update_keys(lane), *self._args(alpha, window, call_id, drifts))))
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc
        return int(out[0]), [float(x) for x in out[1:]]

    async def _acall(self, conn: Any, packed: bytes, fallback: Any) -> Any:
        """Send ``packed`` on ``conn`` and read its reply: ``fallback()`` (the same call as
        ``EVAL``) when the server does not know the script; one retry on a fresh
        connection after a connection error (of either)."""
        redis = _redis()
        retried = evaled = False
        while True:
            try:
                await conn.send_packed_command(packed, check_health=False)
                return await conn.read_response(timeout=self.timeout)
            except redis.exceptions.NoScriptError:
                if evaled:  # (EVAL carries the script: the server cannot answer NOSCRIPT to it)
                    raise
                packed, evaled = fallback(), True  # (the connection is fine: EVAL loads the script too)
            except redis.exceptions.ConnectionError:
                await conn.disconnect()
                if retried:
                    raise
                retried = True

    def _new_aconn(self) -> Any:
        """The connection of :meth:`_aapply_raw` (connected on its first command)."""
        self._async_client()
        with self._alock:
            if self._aconn is None:
                pool = self._aclient.connection_pool
                kwargs = dict(pool.connection_kwargs)
                kwargs["socket_timeout"] = None  # (replies are read with the timeout; writes are tiny)
                self._aconn = pool.connection_class(**kwargs)
            return self._aconn

    # -- reads and maintenance -----------------------------------------------------------
    def read(self, lane: str) -> Tuple[float, List[float]]:
        """(ema, window values oldest first) of ``lane``, read in one transaction."""
        h, w = self.keys(lane)
        try:
            with self._client.pipeline(transaction=True) as p:
                ema, values = p.hget(h, "ema").lrange(w, 0, -1).execute()
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc
        return (float(ema) if ema is not None else 0.0), [float(v) for v in values]

    async def astats(self, lanes: Sequence[str]) -> Dict[str, Tuple[float, int, int]]:
        """lane -> (ema, window length, updates counted) for the lanes in ``lanes`` that exist, in one round trip."""
        self._async_client()
        try:
            async with self._aclient.pipeline(transaction=False) as p:
                for lane in lanes:
                    h, w = self.keys(lane)
                    p.hmget(h, "ema", "total")
                    p.llen(w)
                out = await p.execute()
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc
        stats = {}
        for i, lane in enumerate(lanes):
            (ema, total), n = out[2 * i], out[2 * i + 1]
            if ema is not None or n:
                stats[lane] = (float(ema) if ema is not None else 0.0, int(n), int(total or 0))
        return stats

    def load(self, lane: str, ema: float, window: int, values: Sequence[float]) -> None:
        """Replace ``lane``'s state (the window keeps its last ``window`` values)."""
        try:
            self._load(keys=self.keys(lane), args=[repr(float(ema)), window, *[repr(float(v)) for v in values]])
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc

    def clear(self, lane: str) -> None:
        """Delete ``lane``'s state (EMA 0.0, empty window) and the ids of its last calls."""
        try:
            self._client.delete(*self._update_keys(lane))
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc

    def ping(self) -> bool:
        """True when the store answers; raises :class:`LaneStateUnavailable` otherwise."""
        try:
            return bool(self._client.ping())
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc

    async def aping(self) -> bool:
        """:meth:`ping` on the asyncio client."""
        self._async_client()
        try:
            return bool(await self._aclient.ping())
        except self._errors as exc:
            raise LaneStateUnavailable(f"drift lane store {redact(self.url)} unavailable: {exc}") from exc

    def close(self) -> None:
        """Close the synchronous client's connections."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the asyncio client's connections (on the loop that used them)."""
        with self._alock:
            client, self._aclient, self._aupdate = self._aclient, None, None
            conn, self._aconn, self._aconn_lock = self._aconn, None, None
        if conn is not None:
            await conn.disconnect()
        if client is not None:
            await client.aclose()


class LaneBatcher:
    """LaneBatcher(state, lane, cfg)

    Coalesces the updates of one lane that arrive while a script call for that
    lane is in flight (an event loop serving many connections) into the next
    call: one round trip for all of them, applied in arrival order, each
    caller getting exactly the ``(n, ema)`` a one-by-one application gives at
    its position.  Asyncio only; one instance per lane and event loop.
    """

    def __init__(self, state: "RedisLaneState", lane: str, cfg: Any) -> None:
        self.state, self.lane = state, lane
        self.alpha, self.window = cfg.alpha, cfg.window
        self._pending: List[Tuple[float, Any]] = []
        self._task: Any = None

    async def submit(self, drift: float) -> Tuple[int, float]:
        """Apply one drift; returns ``(n, ema)`` after it."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((drift, fut))
        if self._task is None:  # a task of its own: a cancelled request does not cancel the others' batch
            self._task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    n_before, emas = await self.state._aapply_raw(self.lane, self.alpha, self.window,
                                                                  [d for d, _ in batch])
                except BaseException as exc:  # every caller of the batch gets the error (503 in the service)
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for i, (_, f) in enumerate(batch):
                    if not f.done():
                        f.set_result((min(self.window, n_before + i + 1), emas[i]))
        finally:
            self._task = None


class SharedDriftMonitor:
    """SharedDriftMonitor(lane=None, *, state, metrics=None)

    A :class:`~lukhas_fast.drift.DriftMonitor` whose window and EMA live in a
    shared store (``state``, e.g. :class:`RedisLaneState`).  ``update`` and
    ``update_many`` return the same dicts as ``DriftMonitor``'s, with the
    same checks and errors raised before the store is touched; ``ema``,
    ``_raw`` and ``snapshot()`` read the store.  Every process with a monitor
    on the same lane and store shares one state, exactly as if all their
    updates went through one in-process ``DriftMonitor`` in the order the store
    applied them.  Store errors raise :class:`LaneStateUnavailable`.
    """

    def __init__(self, lane: Optional[str] = None, *, state: RedisLaneState, metrics: Optional[bool] = None) -> None:
        from lukhas_fast import drift as _drift
        from lukhas_fast._drift_py import check_cfg, resolve_lane

        if not isinstance(state, RedisLaneState):
            raise TypeError(f"state must be a RedisLaneState, got {type(state).__name__}")
        self._lane, self._cfg = resolve_lane(lane)
        check_cfg(self._cfg)
        self._state = state
        self._metrics = _metrics.resolve_metrics(metrics)
        self._gauge = _metrics.gauge("lukhas_drift_ema", "EMA of intent/action drift", ["lane"]).labels(
            lane=_metrics.lane_label(self._lane)) if self._metrics else None  # other lanes: "other"
        # The active tier's kernel and checks; this monitor's own window/EMA are never read.
        self._kernel = _drift.DriftMonitor(self._lane, metrics=False)

    @property
    def lane(self) -> str:
        """The lane name (lowercased)."""
        return self._lane

    @property
    def cfg(self) -> Any:
        """The lane's :class:`~lukhas_fast.drift.DriftConfig`."""
        return self._cfg

    @property
    def state(self) -> RedisLaneState:
        """The shared store."""
        return self._state

    @property
    def metrics(self) -> bool:
        """Whether updates set the Prometheus gauge."""
        return self._metrics

    @property
    def ema(self) -> float:
        """The lane's current EMA (read from the store)."""
        return self._state.read(self._lane)[0]

    @property
    def _raw(self) -> List[float]:
        """The lane's window, oldest first (read from the store)."""
        return self._state.read(self._lane)[1]

    def drift(self, intent: Any, action: Any) -> float:
        """``1 - cosine(intent, action)`` with ``DriftMonitor.update``'s kernel and checks (no state change)."""
        return self._kernel.update(intent, action)["drift"]

    def _result(self, drift: float, n: int, ema: float) -> Dict[str, Any]:
        cfg = self._cfg
        code = 2 if ema >= cfg.block_threshold else (1 if ema >= cfg.warn_threshold else 0)
        if self._gauge is not None:
            self._gauge.set(ema)
        return {"lane": self._lane, "drift": drift, "ema": ema, "guardian": GUARDIAN_NAMES[code], "n": n}

    def update(self, intent: Any, action: Any) -> Dict[str, Any]:
        """Like ``DriftMonitor.update``: one atomic store round trip after the in-process cosine."""
        d = self.drift(intent, action)
        n, emas = self._state.apply(self._lane, self._cfg.alpha, self._cfg.window, (d,))
        return self._result(d, n, emas[0])

    async def aupdate(self, intent: Any, action: Any) -> Dict[str, Any]:
        """:meth:`update` on the store's asyncio client."""
        d = self.drift(intent, action)
        n, emas = await self._state.aapply(self._lane, self._cfg.alpha, self._cfg.window, (d,))
        return self._result(d, n, emas[0])

    def update_many(self, intents: Any, actions: Any) -> Dict[str, Any]:
        """Like ``DriftMonitor.update_many`` (all rows checked first), applied in one atomic round trip."""
        drifts = np.asarray(self._kernel.update_many(intents, actions)["drift"], dtype=np.float64)
        cfg = self._cfg
        if drifts.shape[0] == 0:
            ema, values = self._state.read(self._lane)
            code = 2 if ema >= cfg.block_threshold else (1 if ema >= cfg.warn_threshold else 0)
            return {"lane": self._lane, "drift": drifts, "ema": np.empty(0), "guardian_code": np.empty(0, np.int8),
                    "guardian": GUARDIAN_NAMES[code], "n": len(values)}
        n, emas_l = self._state.apply(self._lane, cfg.alpha, cfg.window, drifts.tolist())
        emas = np.asarray(emas_l, dtype=np.float64)
        codes = np.where(emas >= cfg.block_threshold, 2, np.where(emas >= cfg.warn_threshold, 1, 0)).astype(np.int8)
        if self._gauge is not None:
            self._gauge.set(float(emas[-1]))
        return {"lane": self._lane, "drift": drifts, "ema": emas, "guardian_code": codes,
                "guardian": GUARDIAN_NAMES[int(codes[-1])], "n": n}

    def reset(self) -> None:
        """EMA back to 0.0 and an empty window, for every process sharing the lane."""
        self._state.clear(self._lane)

    def snapshot(self) -> Dict[str, Any]:
        """Plain-dict state (``lane``, ``ema``, ``window``), as ``DriftMonitor.snapshot``."""
        ema, values = self._state.read(self._lane)
        return {"lane": self._lane, "ema": ema, "window": values}

    def load_snapshot(self, d: Mapping[str, Any]) -> None:
        """Replace the lane's shared state with a ``snapshot()`` dict (of this lane or a ``DriftMonitor``'s)."""
        from lukhas_fast._drift_py import parse_snapshot

        lane, ema, values = parse_snapshot(d)
        if lane.lower() != self._lane:
            raise ValueError(f"snapshot is for lane {lane!r}, this monitor's lane is {self._lane!r}")
        self._state.load(self._lane, ema, self._cfg.window, values)

    def __repr__(self) -> str:
        return f"SharedDriftMonitor(lane={self._lane!r}, state={self._state!r})"
