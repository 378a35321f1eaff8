"""Instructions per request of the service against the bare-aiohttp floor (deterministic).

The ``Production service`` rows of ``python -m lukhas_fast bench --filter service`` are
rates measured with wrk; on a shared machine they move with the other load.  This
script counts CPU instructions instead, with valgrind's callgrind, which no other
process disturbs:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \\
        python benchmarks/service_instructions.py [label filter ...]

Both applications (``create_app()`` of the service and the bench's bare aiohttp app)
run in this one process, each behind aiohttp's own ``RequestHandler`` (the service's
under ``serve``'s runner and behind its header-timeout protocol layer, as ``serve``
runs it; the floor under ``web.AppRunner``), fed the bench's requests through an
in-memory transport: the count covers aiohttp's parser, routing, the handler and the
response writing, not the kernel's socket work (the same for both, so the ratios
here are a lower bound for the wrk ratios).  For each request, ``callgrind_control``
zeroes the counters, N requests run, the counters are dumped and read; the ticker runs
at 1 fps so that its ticks (wall-clock driven, and callgrind is ~50x slower) do not
count against the service.  Prints instructions per request and floor / ours.
"""

from __future__ import annotations

import asyncio
import gc
import glob
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("LUKHAS_FAST_METRICS", "1")

from aiohttp import web  # noqa: E402

from lukhas_fast import service as svcmod  # noqa: E402
from lukhas_fast._bench import service as bench  # noqa: E402

N = int(os.environ.get("N", "200"))


class _Transport(asyncio.Transport):
    """Collects what aiohttp writes; resolves ``fut`` once one whole response is in."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = bytearray()
        self.fut: "asyncio.Future[None] | None" = None
        self.last = b""
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        i = self.buf.lower().find(b"content-length: ", 0, end)
        n = int(self.buf[i + 16:self.buf.find(b"\r\n", i)])
        if len(self.buf) >= end + 4 + n:
            self.last = bytes(self.buf[:end + 4 + n])
            del self.buf[:end + 4 + n]
            if self.fut is not None and not self.fut.done():
                self.fut.set_result(None)

    def writelines(self, parts) -> None:
        self.write(b"".join(parts))

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True


async def _side(kind: str):
    if kind == "ours":
        app = svcmod.create_app(svcmod.ServiceConfig(fps=1.0))
        runner = svcmod._ServiceRunner(app, handle_signals=False, access_log=None)  # as serve runs it
    else:
        runner = web.AppRunner(bench._bare_app(), handle_signals=False)
    await runner.setup()
    proto = runner.server()
    if kind == "ours":
        proto = svcmod._HeaderTimeout(proto, 10.0, asyncio.get_running_loop())
    t = _Transport()
    proto.connection_made(t)
    return runner, proto, t


async def _run(proto, t: _Transport, raw: bytes, n: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(n):
        t.fut = loop.create_future()
        proto.data_received(raw)
        await t.fut


def main() -> None:
    pid = os.getpid()
    out = os.environ.get("CALLGRIND_OUT_DIR", tempfile.gettempdir())

    def ctl(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)

    def dumped() -> int:
        files = sorted(glob.glob(os.path.join(out, f"*.{pid}.*")), key=os.path.getmtime)
        with open(files[-1]) as fh:
            total = int(re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.M).group(1))
        os.remove(files[-1])
        return total

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    filters = sys.argv[1:]
    reqs = [r for r in bench.requests_() if not filters or any(f in r.label for f in filters)]
    sides = {k: loop.run_until_complete(_side(k)) for k in ("ours", "floor")}
    ctl("-i", "on")
    print(f"{'request':52s} {'ours':>9s} {'floor':>9s}  floor/ours   (instructions per request, N={N})")
    for r in reqs:
        raw, got = r.raw(), {}
        for kind, (_, proto, t) in sides.items():
            loop.run_until_complete(_run(proto, t, raw, 30))
            if not t.last.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"{kind} {r.label}: {t.last[:200]!r}")
            gc.collect()  # (each count starts from the same collector state: else a full collection
            ctl("-z")     # that the rows before made due may land in one row's N requests)
            loop.run_until_complete(_run(proto, t, raw, N))
            ctl("-d")
            got[kind] = dumped() / N
        print(f"{r.label[:52]:52s} {got['ours']:9.0f} {got['floor']:9.0f}  {got['floor'] / got['ours']:10.3f}", flush=True)
    ctl("-i", "off")
    for runner, _, _ in sides.values():
        loop.run_until_complete(runner.cleanup())


if __name__ == "__main__":
    main()
