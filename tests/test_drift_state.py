"""Shared drift lane state on a real redis-server (started here on a free
loopback port, stopped after): RedisLaneState / SharedDriftMonitor give exactly
the results of one in-process DriftMonitor per lane, sequentially and from
several processes; a store outage raises LaneStateUnavailable and the client
recovers by itself when the server is back."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time

import numpy as np
import pytest

from lukhas_fast import drift
from lukhas_fast._bench.procs import RedisServer
from lukhas_fast.drift import LANE_CFG, DriftConfig, DriftMonitor, LaneStateUnavailable, RedisLaneState

pytest.importorskip("redis", reason="the redis extra is not installed")

BIG = "shared-test-big"  # a lane with a window large enough to hold every update of a run


@pytest.fixture(scope="module")
def server():
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def state(server, request):
    st = RedisLaneState(server.url, prefix=f"t:{request.node.name}:")
    yield st
    st.close()


@pytest.fixture
def big_lane(monkeypatch):
    monkeypatch.setitem(LANE_CFG, BIG, DriftConfig(0.15, 0.25, 0.2, 3000))
    return BIG


def _vectors(rng, n, d):
    kind = rng.integers(0, 5, size=n)
    out = []
    for k in kind:
        a = rng.uniform(-1e3, 1e3, size=d)
        if k == 0:
            b = a.copy()  # drift 0
        elif k == 1:
            b = -a  # drift 2
        elif k == 2:
            b = np.zeros(d)  # zero norm: drift 1
        else:
            b = a + rng.normal(0, 300, size=d)
        out.append((a.tolist(), b.tolist()))
    return out


@pytest.mark.parametrize("lane", ["experimental", "candidate", "prod", "labs", "production"])
def test_sequential_updates_equal_an_in_process_monitor(state, lane):
    rng = np.random.default_rng(17)
    shared = state.monitor(lane, metrics=False)
    local = DriftMonitor(lane, metrics=False)
    for intent, action in _vectors(rng, 150, 24):
        got = shared.update(intent, action)
        want = local.update(intent, action)
        assert got == want  # exact: same drift bits, same EMA bits, same decision
    assert shared._raw == local._raw and len(shared._raw) == local.cfg.window
    assert shared.ema == local.ema
    assert shared.snapshot() == local.snapshot()


def test_guardian_progression_and_reference_facts(state):
    shared = state.monitor("experimental", metrics=False)
    r = shared.update([0.0, 0.0], [0.0, 0.0])
    assert (r["drift"], r["guardian"], r["n"]) == (1.0, "allow", 1)
    shared.reset()
    assert shared.update([1.0, 0.0], [1.0, 0.0])["ema"] == 0.0
    shared.reset()
    assert shared.update([1.0, 0.0], [0.0, 1.0])["ema"] == shared.cfg.alpha * 1.0
    seen = [shared.update([1.0, 0.0], [0.0, 1.0])["guardian"] for _ in range(10)]
    assert seen.index("warn") < seen.index("block")


def test_numpy_inputs_and_update_many(state, big_lane):
    rng = np.random.default_rng(3)
    for lane in ("prod", big_lane):
        shared = state.monitor(lane, metrics=False)
        local = DriftMonitor(lane, metrics=False)
        A = rng.uniform(-1, 1, size=(2100, 16))  # > 1000: the script pushes in chunks
        B = A + rng.normal(0, 0.8, size=A.shape)
        got = shared.update_many(A, B)
        want = local.update_many(A, B)
        for key in ("drift", "ema", "guardian_code"):
            np.testing.assert_array_equal(got[key], want[key])
        assert (got["guardian"], got["n"], got["lane"]) == (want["guardian"], want["n"], want["lane"])
        assert shared._raw == local._raw
        f32 = rng.uniform(-1, 1, size=(2, 64)).astype(np.float32)
        assert shared.update(f32[0], f32[1]) == local.update(f32[0], f32[1])
        assert shared.update_many(A[:0], B[:0])["n"] == local.update_many(A[:0], B[:0])["n"]


def test_bad_input_raises_before_the_store_changes(state):
    shared = state.monitor("prod", metrics=False)
    shared.update([1.0, 2.0], [2.0, 1.0])
    before = shared.snapshot()
    with pytest.raises(ValueError, match="non-finite"):
        shared.update([1.0, float("nan")], [1.0, 1.0])
    with pytest.raises(TypeError, match="action"):
        shared.update([1.0, 2.0], [1.0, "x"])
    with pytest.raises(ValueError, match="row 1"):
        shared.update_many([[1.0, 2.0], [1.0, float("inf")]], [[1.0, 2.0], [1.0, 2.0]])
    assert shared.snapshot() == before
    with pytest.raises(TypeError, match="state"):
        drift.SharedDriftMonitor("prod", state=object())
    with pytest.raises(ValueError, match="redis://"):
        RedisLaneState("http://127.0.0.1:1/0")
    with pytest.raises(TypeError, match="url"):
        RedisLaneState(None)
    with pytest.raises(ValueError, match="lane"):
        shared.load_snapshot({"lane": "experimental", "ema": 0.0, "window": []})


def test_snapshot_round_trip_with_an_in_process_monitor(state):
    local = DriftMonitor("candidate", metrics=False)
    rng = np.random.default_rng(5)
    for intent, action in _vectors(rng, 80, 8):
        local.update(intent, action)
    shared = state.monitor("candidate", metrics=False)
    shared.load_snapshot(local.snapshot())
    assert shared.snapshot() == local.snapshot()
    for intent, action in _vectors(rng, 10, 8):
        assert shared.update(intent, action) == local.update(intent, action)
    restored = DriftMonitor.from_snapshot(shared.snapshot(), metrics=False)
    assert restored.snapshot() == local.snapshot()
    shared.reset()
    assert shared.ema == 0.0 and shared._raw == []


def test_metrics_gauge_is_set(state):
    prom = pytest.importorskip("prometheus_client")
    shared = state.monitor("labs", metrics=True)
    r = shared.update([1.0, 0.0], [0.0, 1.0])
    assert prom.REGISTRY.get_sample_value("lukhas_drift_ema", {"lane": "labs"}) == r["ema"]


def _worker(url, prefix, seed, count, out):
    # a separate interpreter (spawn): define the big lane there too
    from lukhas_fast.drift import LANE_CFG, DriftConfig, RedisLaneState

    LANE_CFG[BIG] = DriftConfig(0.15, 0.25, 0.2, 3000)
    mon = RedisLaneState(url, prefix=prefix).monitor(BIG, metrics=False)
    rng = np.random.default_rng(seed)
    rows = []
    for intent, action in _vectors(rng, count, 12):
        rows.append((intent, action, mon.update(intent, action)))
    out.put(rows)


def test_several_processes_behave_like_one_monitor(server, big_lane):
    prefix = "t:procs:"
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(server.url, prefix, 100 + i, 120, out)) for i in range(4)]
    for p in procs:
        p.start()
    rows = [r for _ in procs for r in out.get(timeout=120)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # the window is larger than the run, so each answer's n is its position in
    # the store's order of application: replay that order through one
    # in-process monitor and compare every answer a worker got, exactly
    rows.sort(key=lambda r: r[2]["n"])
    assert [r[2]["n"] for r in rows] == list(range(1, 481))
    local = DriftMonitor(big_lane, metrics=False)
    for intent, action, res in rows:
        assert res == local.update(intent, action)
    state = RedisLaneState(server.url, prefix=prefix)
    assert state.monitor(big_lane, metrics=False).snapshot() == local.snapshot()
    state.close()


def test_store_outage_503_semantics_and_reconnect(request):
    with RedisServer() as srv:
        st = RedisLaneState(srv.url, prefix="t:outage:", timeout=0.5)
        mon = st.monitor("prod", metrics=False)
        mon.update([1.0, 0.0], [0.0, 1.0])
        srv.stop()
        t0 = time.monotonic()
        with pytest.raises(LaneStateUnavailable, match="unavailable"):
            mon.update([1.0, 0.0], [0.0, 1.0])
        assert time.monotonic() - t0 < 5
        with pytest.raises(LaneStateUnavailable):
            asyncio.run(mon.aupdate([1.0, 0.0], [0.0, 1.0]))
        srv.start()  # same port, empty store (no persistence)
        r = mon.update([1.0, 0.0], [0.0, 1.0])  # the pooled dead connection is replaced by itself
        assert r["n"] == 1 and r["ema"] == 0.2

        async def run():
            try:
                return await mon.aupdate([1.0, 0.0], [0.0, 1.0])
            finally:
                await st.aclose()

        assert asyncio.run(run())["n"] == 2
        st.close()


def test_concurrent_updates_are_batched_and_exact(server, big_lane):
    """RedisDriftStore (the service's store): 300 concurrent updates on one loop share
    script calls, and every answer is what one in-process monitor gives at its position."""
    import redis as _redis

    from lukhas_fast._scaleout import RedisDriftStore

    prefix = "t:batch:"
    store = RedisDriftStore(server.url, prefix=prefix)
    rng = np.random.default_rng(11)
    pairs = _vectors(rng, 300, 16)
    plain = _redis.Redis.from_url(server.url)
    plain.config_resetstat()

    async def run():
        try:
            return await asyncio.gather(*(store.update(big_lane, a, b) for a, b in pairs))
        finally:
            await store.aclose()

    answers = asyncio.run(run())
    calls = sum(v["calls"] for k, v in plain.info("commandstats").items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    plain.close()
    assert calls < len(pairs) / 4  # batched
    order = sorted(range(len(pairs)), key=lambda i: answers[i]["n"])
    assert [answers[i]["n"] for i in order] == list(range(1, 301))
    local = DriftMonitor(big_lane, metrics=False)
    for i in order:
        assert answers[i] == local.update(*pairs[i])


def test_batches_across_a_full_window_count_n_exactly(server):
    from lukhas_fast._scaleout import RedisDriftStore

    store = RedisDriftStore(server.url, prefix="t:batchfull:")
    rng = np.random.default_rng(12)
    pairs = _vectors(rng, 100, 8)  # the prod window (64) fills in the middle of a batch

    async def run():
        try:
            first = [await store.update("prod", a, b) for a, b in pairs[:60]]
            rest = await asyncio.gather(*(store.update("prod", a, b) for a, b in pairs[60:]))
            return first + list(rest)
        finally:
            await store.aclose()

    answers = asyncio.run(run())
    local = DriftMonitor("prod", metrics=False)
    assert answers == [local.update(a, b) for a, b in pairs]  # gather keeps submission order


def test_the_async_command_is_what_the_client_packs():
    """_aapply_raw packs its EVALSHA itself (a cached head per lane and settings, then the
    drifts): the bytes are the redis client's own packing of the same arguments."""
    from redis.connection import Connection

    from lukhas_fast._drift_state import LUA_UPDATE, _pack_command

    packer = Connection()
    for args in (("EVALSHA", b"ab12", "2", "k{prod}", "k{prod}:w", "0.3", 64, "0.1", "-2.5e-300"),
                 ("EVAL", LUA_UPDATE, "2", "k{\u00e9}", "k{\u00e9}:w", "1e-05", 7), ("PING",)):
        assert _pack_command(args) == b"".join(packer.pack_command(*args))
    st = RedisLaneState("redis://127.0.0.1:1/0")
    sent = []

    class Conn:
        async def send_packed_command(self, packed, check_health=True):
            sent.append(packed)

        async def read_response(self, timeout=None):
            return [0, b"0.5"]

    st._aconn = Conn()
    st._id_base = "base-"
    for i, drifts in enumerate(([0.25], [0.5, 1e-300, 2.0])):
        assert asyncio.run(st._aapply_raw("prod", 0.3, 64, drifts)) == (0, [0.5])
        h, w = st.keys("prod")
        want = (b"EVALSHA", st._sha, "4", h, w, h + ":ids", h + ":idq", repr(0.3), 64, f"base-{i}",
                *[repr(d) for d in drifts])
        assert sent[-1] == b"".join(packer.pack_command(*want))
    st._heads.update({(str(i), 0.1, 1): b"" for i in range(300)})
    asyncio.run(st._aapply_raw("another lane", 0.3, 64, [0.25]))  # a new head when full
    assert list(st._heads) == [("another lane", 0.3, 64)]  # bounded: cleared when full
    st.close()


def test_the_async_path_recovers_a_lost_script_and_a_killed_connection(server):
    """The service's path (_aapply_raw on its own connection): the script flushed from the
    server is sent again as EVAL; a connection the server closed is replaced by one retry;
    every result is what one in-process monitor gives."""
    import redis as _redis

    st = RedisLaneState(server.url, prefix="t:recover:")
    mon = st.monitor("prod", metrics=False)
    admin = _redis.Redis.from_url(server.url)
    rng = np.random.default_rng(5)
    pairs = _vectors(rng, 6, 8)
    local = DriftMonitor("prod", metrics=False)

    async def run():
        got = []
        try:
            for i, (a, b) in enumerate(pairs):
                if i == 2:
                    admin.script_flush()
                if i == 4:
                    killed = admin.client_kill_filter(_type="normal", skipme=True)
                    assert killed >= 1
                got.append(await mon.aupdate(a, b))
        finally:
            await st.aclose()
        return got

    assert asyncio.run(run()) == [local.update(a, b) for a, b in pairs]
    admin.close()
    st.close()


class _ScriptedConn:
    """A connection whose replies are scripted: each read pops the next outcome (an
    exception to raise, or a value); sends are recorded."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.sent = []
        self.disconnects = 0

    async def send_packed_command(self, packed, check_health=True):
        self.sent.append(packed)
        nxt = self.outcomes[0]
        if isinstance(nxt, tuple) and nxt[0] == "send":  # fail at the send
            self.outcomes.pop(0)
            raise nxt[1]

    async def read_response(self, timeout=None):
        nxt = self.outcomes.pop(0)
        if isinstance(nxt, BaseException):
            raise nxt
        return nxt

    async def disconnect(self):
        self.disconnects += 1


def _acall(outcomes):
    import asyncio

    from lukhas_fast._drift_state import RedisLaneState

    st = object.__new__(RedisLaneState)
    st.timeout = 1.0
    conn = _ScriptedConn(outcomes)
    return conn, asyncio.run(st._acall(conn, b"EVALSHA", lambda: b"EVAL"))


@pytest.mark.parametrize("where", ["send", "read"])
def test_acall_retries_the_eval_fallback_after_a_connection_error(where):
    redis = pytest.importorskip("redis")
    lost = redis.exceptions.ConnectionError("gone")
    first = ("send", lost) if where == "send" else lost
    conn, got = _acall([redis.exceptions.NoScriptError("NOSCRIPT"), first, [0.5, 0.25]])
    assert got == [0.5, 0.25]
    assert conn.sent == [b"EVALSHA", b"EVAL", b"EVAL"] and conn.disconnects == 1


def test_acall_is_bounded():
    redis = pytest.importorskip("redis")
    lost = redis.exceptions.ConnectionError("gone")
    with pytest.raises(redis.exceptions.ConnectionError):
        _acall([lost, lost, "never read"])
    with pytest.raises(redis.exceptions.NoScriptError):  # NOSCRIPT to EVAL itself: not looped on
        _acall([redis.exceptions.NoScriptError("a"), redis.exceptions.NoScriptError("b"), "never read"])


# -- exactly once: a call sent again after its reply was lost -----------------------------------

class _ReplyDropper:
    """A TCP proxy in front of the redis-server.  Armed, it closes the client's connection
    instead of passing on the next reply from the server: the command reached the server
    and ran, and only its reply is lost (a connection that dies mid-call)."""

    def __init__(self, port):
        import socket
        import threading

        self.upstream = port
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        import socket

        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies:
                    with self._lock:
                        drop = self.armed.is_set()
                        if drop:
                            self.armed.clear()
                            self.dropped += 1
                    if drop:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.lsock.close()


@pytest.fixture
def dropper(server):
    d = _ReplyDropper(server.port)
    yield d
    d.close()


def _total(server, st, lane):
    import redis as _redis

    admin = _redis.Redis.from_url(server.url)
    try:
        return int(admin.hget(st.keys(lane)[0], "total"))
    finally:
        admin.close()


def test_a_lost_reply_is_not_applied_twice_sync(server, dropper):
    """The synchronous client sends a call again after a connection error; when the reply was
    what got lost, the store answers the repeat from the call's own id: the results stay those
    of one in-process monitor, and the store counted each update once."""
    st = RedisLaneState(dropper.url, prefix="t:once-sync:")
    mon, local = st.monitor("prod", metrics=False), DriftMonitor("prod", metrics=False)
    pairs = _vectors(np.random.default_rng(11), 8, 6)
    got = []
    for i, (a, b) in enumerate(pairs):
        if i in (1, 4, 5):
            dropper.armed.set()  # (the connection exists by now: the next reply is this update's)
        got.append(mon.update(a, b))
    assert dropper.dropped == 3
    assert got == [local.update(a, b) for a, b in pairs]
    assert _total(server, st, "prod") == len(pairs)
    st.close()


def test_a_lost_reply_is_not_applied_twice_async(server, dropper):
    """The same on the service's asyncio path (_aapply_raw's own connection and retry)."""
    st = RedisLaneState(dropper.url, prefix="t:once-async:")
    mon, local = st.monitor("prod", metrics=False), DriftMonitor("prod", metrics=False)
    pairs = _vectors(np.random.default_rng(12), 8, 6)

    async def run():
        got = []
        try:
            for i, (a, b) in enumerate(pairs):
                if i in (1, 2, 6):
                    dropper.armed.set()
                got.append(await mon.aupdate(a, b))
        finally:
            await st.aclose()
        return got

    assert asyncio.run(run()) == [local.update(a, b) for a, b in pairs]
    assert dropper.dropped == 3
    assert _total(server, st, "prod") == len(pairs)
    st.close()


def test_the_store_remembers_a_bounded_number_of_call_ids(server, monkeypatch):
    """A repeat of one of the last IDS_KEPT calls is answered from its id (same reply, nothing
    applied); older ids are forgotten (the call then counts as new); the id keys stay bounded."""
    import redis as _redis

    from lukhas_fast import _drift_state as ds

    st = RedisLaneState(server.url, prefix="t:ids:")
    admin = _redis.Redis.from_url(server.url)
    keys = st._update_keys("prod")

    def call(call_id, drifts):
        return st._update(keys=keys, args=st._args(0.5, 4, call_id, drifts))

    first = call("a", [0.5, 1.0])
    assert call("a", [0.5, 1.0]) == first  # the repeat: the same reply
    assert st.read("prod") == (0.625, [0.5, 1.0]) and admin.hget(keys[0], "total") == b"2"
    for i in range(ds.IDS_KEPT):
        call(f"n{i}", [0.0])
    assert admin.hlen(keys[2]) == admin.llen(keys[3]) == ds.IDS_KEPT  # bounded
    assert admin.hget(keys[2], "a") is None  # "a" was the oldest: forgotten
    assert call(f"n{ds.IDS_KEPT - 1}", [0.0]) == [4, b"0"]  # still known: answered as it was, not applied
    assert admin.hget(keys[0], "total") == str(2 + ds.IDS_KEPT).encode()
    before = st.read("prod")
    assert call("", [0.25])[0] == 4 and st.read("prod") != before  # no id: always applied
    st.clear("prod")
    assert admin.exists(*keys) == 0  # clear() forgets the ids too
    admin.close()
    st.close()


def test_call_ids_are_unique_per_instance_and_process():
    st = RedisLaneState("redis://127.0.0.1:1/0")
    other = RedisLaneState("redis://127.0.0.1:1/0")
    ids = [st._call_id() for _ in range(3)]
    assert len(set(ids + [other._call_id()])) == 4
    from lukhas_fast import _drift_state as ds

    ds._forked()  # what os.fork() runs in the child: a forked copy takes a new base
    forked = st._call_id()
    assert forked.rsplit("-", 1)[0] != ids[0].rsplit("-", 1)[0]
    st.close()
    other.close()


def test_a_forked_child_sends_ids_of_its_own():
    import os

    st = RedisLaneState("redis://127.0.0.1:1/0")
    parent = st._call_id().rsplit("-", 1)[0]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its base and leave at once
        try:
            os.write(w, st._call_id().rsplit("-", 1)[0].encode())
        finally:
            os._exit(0)
    os.close(w)
    child = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert child and child != parent and st._call_id().rsplit("-", 1)[0] == parent
    st.close()
