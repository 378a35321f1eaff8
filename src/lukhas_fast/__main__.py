"""Command line: ``python -m lukhas_fast bench [--quick] [--filter TEXT] [--json PATH]``.

Subcommands are registered in :data:`COMMANDS`; each gets the parsed
arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from lukhas_fast._backend import FAMILIES, TIERS, backend_info, format_backend_info, tier_modules


def _fmt_time(sec: Optional[float]) -> str:
    if sec is None:
        return "-"
    if sec < 1e-6:
        return f"{sec * 1e9:.1f} ns"
    if sec < 1e-3:
        return f"{sec * 1e6:.2f} us"
    if sec < 1.0:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec:.2f} s"


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _machine() -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
    }


def cmd_bench(args: argparse.Namespace) -> int:
    """Time every registered case on every installed tier and print a table."""
    from lukhas_fast._bench.core import cases, measurements, time_thunk

    info = backend_info()
    machine = _machine()
    print(format_backend_info(info))
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    print()
    budget = 0.05 if args.quick else args.budget
    result: Dict[str, Any] = {"machine": machine, "backend_info": info, "cases": [], "measurements": []}
    flt = (args.filter or "").lower()

    rows: List[List[str]] = []
    peer_names: List[str] = []
    selected = [c for c in cases() if flt in c.op.lower() or flt in c.family.lower()]
    for c in selected:
        for p in c.peers:
            if p not in peer_names:
                peer_names.append(p)
    for c in selected:
        mods = tier_modules(c.family)
        times: Dict[str, Optional[float]] = {}
        for tier in TIERS:
            if tier not in c.tiers or tier not in mods:
                continue
            thunk = c.tier(mods[tier])
            if thunk is not None:
                times[tier] = time_thunk(thunk, c.ops, budget=budget)
        peers: Dict[str, Optional[float]] = {}
        for name, factory in c.peers.items():
            thunk = factory()
            if thunk is not None:
                peers[name] = time_thunk(thunk, c.ops, budget=budget)
        ratio = ""
        if times.get("python") and times.get("c"):
            ratio = f"{times['python'] / times['c']:.1f}x"
        vs = []
        best = times.get("c") or times.get("numba")
        if best:
            for name, t in peers.items():
                if t:
                    vs.append(f"{name} {best / t:.2f}")
        rows.append(
            [c.op]
            + [_fmt_time(times.get(t)) for t in ("python", "numba", "c")]
            + [_fmt_time(peers.get(p)) for p in peer_names]
            + [ratio, ", ".join(vs)]
        )
        result["cases"].append(
            {"op": c.op, "family": c.family, "ops": c.ops, "seconds_per_op": times, "peers": peers,
             "python_over_c": (times["python"] / times["c"]) if times.get("python") and times.get("c") else None}
        )
    if rows:
        header = ["operation", "python", "numba", "c"] + peer_names + ["python/c", "fast/peer"]
        print(_table(header, rows))
        print()

    for m in measurements():
        if flt and flt not in m.name.lower() and flt not in m.family.lower():
            continue
        mrows = m.run(tier_modules(m.family) if m.family in FAMILIES else {}, args.quick)
        if not mrows:
            continue
        cols: List[str] = []
        for r in mrows:
            for k in r.values:
                if k not in cols:
                    cols.append(k)
        print(f"{m.name}")
        table_rows = [
            [r.label] + [(f"{r.values[k]:.4g}" if k in r.values else "-") for k in cols] + [r.unit, r.note]
            for r in mrows
        ]
        print(_table(["measurement"] + cols + ["unit", "note"], table_rows))
        print()
        result["measurements"].append(
            {"name": m.name, "family": m.family,
             "rows": [{"label": r.label, "values": dict(r.values), "unit": r.unit, "note": r.note} for r in mrows]}
        )

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
        print(f"saved {args.json}")
    return 0


def _bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark every operation on every installed backend")
    p.add_argument("--quick", action="store_true", help="short timing budget (smoke run)")
    p.add_argument("--filter", default="", help="only operations/families containing this text")
    p.add_argument("--budget", type=float, default=0.25, help="seconds of timing per cell (default 0.25)")
    p.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    p.set_defaults(func=cmd_bench)


def cmd_info(args: argparse.Namespace) -> int:
    """Print backend_info()."""
    if args.json:
        print(json.dumps(backend_info(), indent=2, default=str))
    else:
        print(format_backend_info())
    return 0


def _info_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show which backend each family uses")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a script unmodified with the SDK import aliases installed (like ``coverage run``)."""
    import runpy

    from lukhas_fast._dropin import install

    install()
    sys.argv = [args.script] + list(args.args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    try:
        runpy.run_path(args.script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


def _run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run a script written for the pure-Python SDK on lukhas_fast")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the production HTTP service (``--workers N``: a supervisor and N worker processes)."""
    import logging

    from lukhas_fast._workers import supervise, worker_info

    log = logging.getLogger("lukhas_fast.service")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # no per-request log lines by default
    if args.state is not None:
        try:
            from lukhas_fast.drift import RedisLaneState

            RedisLaneState(args.state).close()  # checks the URL and that the redis package imports
        except (ImportError, TypeError, ValueError) as exc:
            print(f"python -m lukhas_fast serve: error: --state: {exc}", file=sys.stderr)
            return 2
    if args.workers > 1 and not worker_info().supervised:
        if args.state is None:
            log.warning("--workers %d without --state: each worker keeps its own drift lane state "
                        "(use --state redis://host:port/db to share it)", args.workers)
        return supervise(sys.argv[1:] if args.argv is None else args.argv, args.host, args.port, args.workers)
    from lukhas_fast.service import ServiceConfig, serve

    return serve(ServiceConfig(host=args.host, port=args.port, max_body=args.max_body, fps=args.fps,
                               ring_capacity=args.ring_capacity, state=args.state, workers=args.workers),
                 seconds=args.seconds)


def _workers_arg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the aiohttp production service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")
    p.add_argument("--fps", type=float, default=30.0, help="consciousness ticker rate")
    p.add_argument("--ring-capacity", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until SIGINT/SIGTERM)")
    p.add_argument("--workers", type=_workers_arg, default=1,
                   help="worker processes on the one port (default 1; a supervisor restarts crashed ones)")
    p.add_argument("--state", metavar="URL", default=None,
                   help="shared drift lane state: redis://HOST:PORT/DB (Redis or Valkey); default: in-process")
    p.set_defaults(func=cmd_serve, argv=None)


#: Subcommand registrations: each adds its parser to the subparsers object.
COMMANDS: List[Callable[[Any], None]] = [_bench_parser, _info_parser, _run_parser, _serve_parser]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m lukhas_fast``."""
    parser = argparse.ArgumentParser(prog="python -m lukhas_fast")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    if argv is not None:
        args.argv = list(argv)  # serve --workers re-runs this command line in each worker
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
