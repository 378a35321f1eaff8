"""Load benchmark of the production service, against 127.0.0.1 only.

The load generator is ``wrk`` (1 thread, 32 keep-alive connections, the
request body from a file) when it is installed; otherwise a built-in asyncio
client (the rows then say so).  On a machine with two or more cores the
server is pinned to CPU 0 and the load generator to CPU 1, so the figures
are what one server core does.

Rows (errors summed over all runs):

* every route of ``python -m lukhas_fast serve`` (C tier, metrics on) and
  the same request against a bare aiohttp app whose handlers only read the
  body and answer a constant (the framework's floor); the ratio is ours /
  floor for the same body: ROUNDS rounds of one short run each, back to back
  in ABBA order, and the median of the rounds' ratios (see ``paired``);
* the same pairs again, both servers pinned together to CPU 0 and loaded at the
  same time (one wrk each, on CPU 1): the median of CONTEST_ROUNDS ratios, which
  a slow spell of the shared machine cannot bias, since it hits both at once;
* ``POST /drift/analyze`` with a JSON body (768-d, 17-digit doubles), a
  msgpack body with arrays, and a msgpack body with ``bin`` float32 vectors;
* ``--workers 2`` against ``--workers 1`` (unpinned: the load generator
  shares the two cores with the workers);
* ``--state redis://`` (a real ``redis-server`` started here) against
  in-process lane state.

Any non-2xx answer and any socket error counts as an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from lukhas_fast._bench.core import Row, measurement
from lukhas_fast._bench.procs import RedisServer, free_port, wait_port

CONNECTIONS = 32
ROUNDS = 16  # rounds of two runs back to back, one per server (see paired())
CONTEST_ROUNDS = 9  # runs of ours and the floor on one core at once (see contest())


@dataclass(frozen=True)
class Req:
    """One benchmark request: a label, method, path, body and content type."""

    label: str
    path: str
    body: Optional[bytes] = None
    ctype: str = "application/json"
    accept: Optional[str] = None

    def raw(self) -> bytes:
        head = f"{'POST' if self.body is not None else 'GET'} {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if self.accept:
            head += f"Accept: {self.accept}\r\n"
        if self.body is None:
            return (head + "\r\n").encode()
        head += f"Content-Type: {self.ctype}\r\nContent-Length: {len(self.body)}\r\n\r\n"
        return head.encode() + self.body


def requests_() -> List[Req]:
    """The benchmark requests (deterministic bodies)."""
    import msgpack
    import numpy as np

    rng = random.Random(0)
    a = [rng.uniform(-1, 1) for _ in range(768)]
    b = [x + rng.uniform(-0.1, 0.1) for x in a]
    plan = {"action": "send_email", "params": {"to": "alice@example.com", "body": "quarterly report draft",
                                                "url": "https://api.partner.io/v1"}}
    mp = "application/msgpack"
    return [
        Req("GET /health", "/health"),
        Req("POST /drift/analyze JSON (768-d, 17-digit doubles)", "/drift/analyze",
            json.dumps({"lane": "prod", "intent": a, "action": b}).encode()),
        Req("POST /drift/analyze msgpack arrays (768-d float64)", "/drift/analyze",
            msgpack.packb({"lane": "prod", "intent": a, "action": b}), mp, mp),
        Req("POST /drift/analyze msgpack bin float32 (768-d)", "/drift/analyze",
            msgpack.packb({"lane": "prod", "dtype": "float32", "intent": np.asarray(a, "<f4").tobytes(),
                           "action": np.asarray(b, "<f4").tobytes()}), mp, mp),
        Req("POST /safety/enrich (small plan, cache hit)", "/safety/enrich", json.dumps({"plan": plan}).encode()),
        Req("POST /consciousness/analyze (small frame)", "/consciousness/analyze",
            json.dumps({"frame": {"kind": "percept", "value": 0.5}, "priority": 0.7}).encode()),
        Req("POST /ethics/evaluate (small plan)", "/ethics/evaluate", json.dumps({"plan": plan}).encode()),
    ]


def _bare_app() -> Any:
    """A bare aiohttp app on the service's paths: ``GET /health`` answers a
    constant JSON object, every POST reads its body and answers its length.
    No middleware, no parsing: what any aiohttp service pays per request."""
    from aiohttp import web

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def post(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=b'{"n":%d}' % len(body), content_type="application/json")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/health", health)
    for path in ("/drift/analyze", "/safety/enrich", "/consciousness/analyze", "/ethics/evaluate"):
        app.router.add_post(path, post)
    return app


def _bare_main(port: int) -> None:
    """The floor of the service bench: :func:`_bare_app` served on ``port``."""
    from aiohttp import web

    app = _bare_app()
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _cpus() -> List[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return list(range(os.cpu_count() or 1))


def _pin(cpu: Optional[int]) -> List[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


class _Server:
    """A server process (ours with ``args``, or the bare app) on a free port."""

    def __init__(self, kind: str, args: Sequence[str] = (), cpu: Optional[int] = None) -> None:
        self.port = free_port()
        env = dict(os.environ, LUKHAS_FAST_METRICS="1")
        if kind == "bare":
            cmd = [sys.executable, "-c", f"from lukhas_fast._bench.service import _bare_main; _bare_main({self.port})"]
        else:
            cmd = [sys.executable, "-m", "lukhas_fast", "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(_pin(cpu) + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 60, self.proc)
        deadline = time.monotonic() + 60
        while True:  # with workers the parent listens before the workers answer
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"server did not start: {cmd}")
                time.sleep(0.05)
        while kind != "bare":  # serve starts its offload worker processes in the background: measure once they are up
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                    workers = json.loads(r.read()).get("offloaded_enrichments", {}).get("workers")
                if workers is None or workers >= 2:  # the default --offload-workers
                    break
            except OSError:
                if self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"server did not start: {cmd}")
            if time.monotonic() > deadline:
                break  # measure anyway: the offload workers only matter for large enrichments
            time.sleep(0.2)

    def check(self, req: Req) -> None:
        """One request through urllib: the route must answer 200 (a fast 400 is no figure)."""
        r = urllib.request.Request(f"http://127.0.0.1:{self.port}{req.path}", data=req.body,
                                   headers={"Content-Type": req.ctype, **({"Accept": req.accept} if req.accept else {})})
        with urllib.request.urlopen(r, timeout=10) as resp:
            if resp.status != 200:  # pragma: no cover - urlopen raises on 4xx/5xx
                raise RuntimeError(f"{req.label}: status {resp.status}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()


# -- load generators --------------------------------------------------------------------

_WRK_LUA = """
local f = assert(io.open(os.getenv("LUKHAS_WRK_BODY"), "rb"))
local body = f:read("*all")
f:close()
wrk.method = os.getenv("LUKHAS_WRK_METHOD")
if wrk.method == "POST" then
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("LUKHAS_WRK_CTYPE")
end
local accept = os.getenv("LUKHAS_WRK_ACCEPT")
if accept ~= nil and accept ~= "" then wrk.headers["Accept"] = accept end
"""


def _unit(v: str, u: str) -> float:
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]


def run_wrk(port: int, req: Req, seconds: float, cpu: Optional[int]) -> Tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, errors, requests) from one wrk run."""
    with tempfile.TemporaryDirectory(prefix="lukhas-wrk-") as d:
        script, body = os.path.join(d, "req.lua"), os.path.join(d, "body")
        with open(script, "w") as fh:
            fh.write(_WRK_LUA)
        with open(body, "wb") as fh:
            fh.write(req.body or b"")
        env = dict(os.environ, LUKHAS_WRK_BODY=body, LUKHAS_WRK_METHOD="POST" if req.body is not None else "GET",
                   LUKHAS_WRK_CTYPE=req.ctype, LUKHAS_WRK_ACCEPT=req.accept or "")
        secs = max(1, int(round(seconds)))  # wrk takes whole seconds
        cmd = _pin(cpu) + ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{secs}s", "--latency", "-s", script,
                           f"http://127.0.0.1:{port}{req.path}"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=secs + 60)
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr.strip() or out.strip()}")
    rps = float(m.group(1))
    lat = dict((m.group(1), _unit(m.group(2), m.group(3)))
               for m in re.finditer(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", out)
    return rps, lat.get("50", float("nan")), lat.get("99", float("nan")), errors, int(m.group(1)) if m else 0


class _Client(asyncio.Protocol):
    """Built-in fallback: one keep-alive connection sending a prebuilt request back to back."""

    def __init__(self, request: bytes, state: Dict[str, object]) -> None:
        self.request = request
        self.state = state
        self.buf = b""
        self.need = -1
        self.t0 = 0.0
        self.inflight = False
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._next()

    def _finish(self) -> None:
        st = self.state
        st["open"] -= 1  # type: ignore[operator]
        if st["open"] == 0 and not st["done"].done():  # type: ignore[attr-defined]
            st["done"].set_result(None)  # type: ignore[attr-defined]

    def _next(self) -> None:
        st = self.state
        assert self.transport is not None
        if time.perf_counter() >= st["until"]:  # type: ignore[operator]
            self.transport.close()
            self._finish()
            return
        self.inflight = True
        self.t0 = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].lower()
                i = head.find(b"content-length:")
                length = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
                if int(head[9:12]) >= 300:
                    self.state["errors"] += 1  # type: ignore[operator]
                self.need = end + 4 + length
            if len(self.buf) < self.need:
                return
            self.buf = self.buf[self.need:]
            self.need = -1
            self.inflight = False
            self.state["lat"].append(time.perf_counter() - self.t0)  # type: ignore[attr-defined]
            self._next()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.inflight:
            self.state["errors"] += 1  # type: ignore[operator]
            self._finish()


def run_builtin(port: int, req: Req, seconds: float, cpu: Optional[int]) -> Tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, errors, requests) from the built-in client (this process pinned to ``cpu``)."""
    old = None
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
    try:
        async def go() -> Tuple[float, float, float, int, int]:
            loop = asyncio.get_running_loop()
            t0 = time.perf_counter()
            state: Dict[str, object] = {"until": t0 + seconds, "errors": 0, "lat": [], "open": CONNECTIONS,
                                        "done": loop.create_future()}
            for _ in range(CONNECTIONS):
                await loop.create_connection(lambda: _Client(req.raw(), state), "127.0.0.1", port)
            await asyncio.wait_for(state["done"], timeout=seconds + 60)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - t0
            lat: List[float] = sorted(state["lat"])  # type: ignore[arg-type]
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
            return (len(lat) / elapsed, p(0.5), p(0.99), int(state["errors"]),  # type: ignore[call-overload]
                    len(lat))

        return asyncio.run(go())
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux ``/proc``), 0.0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def contest(servers: Mapping[str, "_Server"], req: Req, seconds: float, rounds: int,
            cpu: Optional[int]) -> Tuple[float, float, float, int, int]:
    """``servers["ours"]`` and ``servers["floor"]`` (both pinned to one core) loaded at the
    same time, each by its own wrk on ``cpu``, ``rounds`` times: ``(median of the ratios
    ours/floor, ours req/s and floor req/s of the median round, errors summed, rounds)``.

    Why: the rate of a shared guest's core moves by up to 30% within seconds, so two
    servers measured one after the other may meet different machines.  Sharing one core
    at the same moment, the scheduler gives each about half of it, and each one's rate
    is what its own cost per request allows in that half: their ratio is the ratio of
    their costs (the ratio of their rates alone on the core), whatever the speed of
    that moment."""
    import threading

    rows = []
    errors = 0
    for _ in range(rounds):
        got: Dict[str, Tuple[float, float, float, int, int]] = {}
        threads = [threading.Thread(target=lambda n=n, s=s: got.__setitem__(n, run_wrk(s.port, req, seconds, cpu)))
                   for n, s in servers.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(got) != len(servers):
            raise RuntimeError("a wrk run failed")
        errors += got["ours"][3] + got["floor"][3]
        rows.append((got["ours"][0] / got["floor"][0], got["ours"][0], got["floor"][0]))
    rows.sort()
    mid = rows[(len(rows) - 1) // 2]  # (the lower median of an even count: a real round)
    return mid[0], mid[1], mid[2], errors, rounds


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def paired(first: List[Tuple[float, ...]], second: List[Tuple[float, ...]]) -> Tuple[float, Tuple, Tuple, int, int]:
    """Round ``i`` of two configurations measured back to back is ``(first[i], second[i])``
    (each ``(req/s, p50, p99, errors, requests, cpu us/req)``): ``(median of the rounds'
    ratios first/second, that round's two runs, errors summed over all runs of each)``.

    Why not the best run of each: on a shared guest a core's speed moves by 10-30%
    from one second to the next, and the best of a few runs is the luckiest moment each
    configuration met, not the same moment for both (it gave the same code's ``GET
    /health`` 0.69 in one run and 1.00 in another).  Two runs back to back mostly meet
    the same machine; their ratio cancels its speed, and the median ignores the rounds
    where it changed in between.  The caller alternates which of the two runs first
    (ABBA), so a drift within rounds cancels too.  An even count takes the lower
    median, a real round."""
    if not first or len(first) != len(second):
        raise ValueError("paired() needs the same number of runs of each, at least one")
    rounds = sorted((_div(a[0], b[0]), i) for i, (a, b) in enumerate(zip(first, second)))
    ratio, i = rounds[(len(rounds) - 1) // 2]
    return ratio, first[i], second[i], int(sum(r[3] for r in first)), int(sum(r[3] for r in second))


@measurement("Production service under load (127.0.0.1, wrk -t1 -c32; server pinned to CPU 0)", "service")
def service_load(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Requests/s per route of the C-tier service and of a bare aiohttp app (the floor) for the
    same body; drift with JSON / msgpack arrays / msgpack bin float32; --workers 2 vs 1;
    --state redis:// vs in-process.  The median round of ROUNDS paired runs (:func:`paired`); errors summed."""
    try:
        import aiohttp  # noqa: F401
        import msgpack  # noqa: F401
    except ImportError:
        return []
    seconds = 1.0  # each paired run (wrk takes whole seconds)
    contest_seconds = 1.0 if quick else 2.0
    rounds = 1 if quick else ROUNDS
    cpus = _cpus()
    srv_cpu, gen_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    have_wrk = shutil.which("wrk") is not None
    run = run_wrk if have_wrk else run_builtin
    gen = "wrk" if have_wrk else "built-in asyncio client (wrk not installed)"
    reqs = requests_()
    rows: List[Row] = []

    def measure(servers: Dict[str, "_Server"], todo: Sequence[Req], cpu: Optional[int]) -> Dict[str, Tuple]:
        """``{label: paired(first server's runs, second's)}`` for each request of ``todo``."""
        for s in servers.values():
            for r in todo:
                s.check(r)
                run(s.port, r, 1.0, cpu)  # warm-up
        runs: Dict[Tuple[str, str], List[Tuple[float, ...]]] = {}
        order = list(servers.items())
        for i in range(rounds):
            for r in todo:
                for name, s in (order if i % 2 == 0 else order[::-1]):  # ABBA: who runs first alternates
                    c0 = _cpu_seconds(s.proc.pid)
                    res = run(s.port, r, seconds, cpu)
                    used = _cpu_seconds(s.proc.pid) - c0  # the server process only (not workers)
                    runs.setdefault((name, r.label), []).append(res + (used / res[4] * 1e6 if res[4] and used else 0.0,))
        (a, _), (b, _) = order
        return {r.label: paired(runs[(a, r.label)], runs[(b, r.label)]) for r in todo}

    # 1. every route against the floor (server on one core, generator on the other)
    servers = {"ours": _Server("ours", ["--fps", "30"], srv_cpu), "floor": _Server("bare", (), srv_cpu)}
    try:
        res = measure(servers, reqs, gen_cpu)
        # 1b. the same, both servers on that core at once (wrk only: two generators at once)
        together = ({r.label: contest(servers, r, contest_seconds, 1 if quick else CONTEST_ROUNDS, gen_cpu) for r in reqs}
                    if have_wrk and srv_cpu is not None else {})
    finally:
        for s in servers.values():
            s.stop()
    for r in reqs:
        ratio, ours, floor, e_ours, e_floor = res[r.label]
        rows.append(Row(r.label, {"ours": ours[0], "floor": floor[0], "ours/floor": ratio,
                                  "cpu us/req": ours[5], "floor cpu": floor[5], "floor/ours cpu": _div(floor[5], ours[5])},
                        "req/s",
                        f"median of {rounds} paired {seconds:g} s runs; p50 {ours[1]:.2f} ms, p99 {ours[2]:.2f} ms; "
                        f"errors ours {e_ours}, floor {e_floor}; {len(r.body or b'')} B body; {gen}"))

    for r in reqs:
        if r.label in together:
            ratio, ours_rps, floor_rps, errors, n = together[r.label]
            rows.append(Row(f"{r.label}: both on CPU 0 at once", {"ours": ours_rps, "floor": floor_rps, "ours/floor": ratio},
                            "req/s", f"median ratio of {n} {contest_seconds:g} s runs of the two servers pinned together to CPU 0, each "
                            f"loaded by its own wrk on CPU 1 at the same time; errors {errors}; {gen}"))

    drift_bin = reqs[3]
    drift_json = reqs[1]
    # 2. --workers 2 against --workers 1 (unpinned: the generator shares both cores)
    servers = {"1 worker": _Server("ours", ["--workers", "1"]), "2 workers": _Server("ours", ["--workers", "2"])}
    try:
        res = measure(servers, [drift_bin], None)
    finally:
        for s in servers.values():
            s.stop()
    ratio, one, two, e_one, e_two = res[drift_bin.label]
    rows.append(Row("drift msgpack bin: --workers 2 vs 1", {"ours": two[0], "floor": one[0], "ours/floor": 1 / ratio},
                    "req/s", f"columns: 2 workers, 1 worker, ratio; unpinned, the load generator shares the 2 cores; "
                    f"errors {e_two} / {e_one}; {gen}"))

    # 3. --state redis:// against in-process (server pinned to CPU 0, redis-server and generator on CPU 1)
    if shutil.which("redis-server"):
        try:
            import redis  # noqa: F401
        except ImportError:
            redis = None  # type: ignore[assignment]
        if redis is not None:
            with RedisServer() as store:
                if gen_cpu is not None and shutil.which("taskset"):
                    subprocess.run(["taskset", "-pc", str(gen_cpu), str(store.proc.pid)],  # type: ignore[union-attr]
                                   capture_output=True)
                servers = {"redis": _Server("ours", ["--state", store.url], srv_cpu),
                           "local": _Server("ours", [], srv_cpu)}
                try:
                    res = measure(servers, [drift_bin, drift_json], gen_cpu)
                finally:
                    for s in servers.values():
                        s.stop()
            for r in (drift_bin, drift_json):
                ratio, red, loc, e_red, e_loc = res[r.label]
                rows.append(Row(f"{r.label.split(' (')[0]}: --state redis vs in-process",
                                {"ours": red[0], "floor": loc[0], "ours/floor": ratio,
                                 "cpu us/req": red[5], "floor cpu": loc[5], "floor/ours cpu": _div(loc[5], red[5])},
                                "req/s", f"columns: redis state, in-process state, ratio; redis-server shares CPU 1 "
                                f"with the generator; errors {e_red} / {e_loc}; {gen}"))
    return rows
