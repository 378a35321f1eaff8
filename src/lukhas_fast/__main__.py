"""Command line: ``python -m lukhas_fast`` (or ``lukhas-fast``) ``bench|info|run|serve``, ``--version``.

Subcommands are registered in :data:`COMMANDS`; each gets the parsed
arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

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
    from lukhas_fast._bench.core import cases, measurements, time_thunks

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
        thunks: Dict[str, Any] = {}
        for tier in TIERS:
            if tier not in c.tiers or tier not in mods:
                continue
            thunk = c.tier(mods[tier])
            if thunk is not None:
                thunks[tier] = thunk
        for name, factory in c.peers.items():
            thunk = factory()
            if thunk is not None:
                thunks["peer:" + name] = thunk
        timed = time_thunks(thunks, c.ops, budget=budget) if thunks else {}  # interleaved: one row, one spell
        times: Dict[str, Optional[float]] = {t: timed[t] for t in TIERS if t in timed}
        peers: Dict[str, Optional[float]] = {n: timed["peer:" + n] for n in c.peers if "peer:" + n in timed}
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


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (``prog: error: message``) and exit code 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..65535, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..65535, got {text!r}")
    return v


def _int_min(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}")
        return v

    return parse


def _float_range(lo: float, strict: bool, hi: Optional[float] = None) -> Callable[[str], float]:
    want = f"a number {'>' if strict else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}") from None
        if not (v == v and abs(v) != float("inf")) or (v <= lo if strict else v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return v

    return parse


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(options)}, got {text!r}")
        return text.lower()

    return parse


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a host name or address, got an empty string")
    return text.strip()


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be one of 1, 0, true, false, yes, no, on, off, got {text!r}")


def _state_url(text: str) -> str:
    t = text.strip()
    if not t.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(f"must be a redis://host:port/db URL, got {text!r}")
    return t


_LANES = ("experimental", "candidate", "prod", "labs", "production")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: ``serve`` options: (flag, ServiceConfig field or None, parser, default, help).  Each is
#: also read from the environment variable ``LUKHAS_SERVICE_<FLAG>`` (flag in upper case,
#: dashes as underscores, e.g. ``LUKHAS_SERVICE_MAX_BODY``); a flag wins over the variable.
SERVE_OPTIONS: List[Tuple[str, Optional[str], Callable[[str], Any], Any, str]] = [
    ("--host", "host", _host, "127.0.0.1", "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"),
    ("--port", "port", _port, 8080, "TCP port (default 8080; 0 picks a free one)"),
    ("--metrics-port", "metrics_port", _port, None,
     "also serve the Prometheus exposition on this port, like the guide's start_http_server (default off)"),
    ("--max-body", "max_body", _int_min(1), 1 << 20, "largest request body in bytes, after decompression (default 1 MiB)"),
    ("--max-depth", "max_depth", _int_min(1), 64, "deepest JSON nesting of a request body (default 64)"),
    ("--fps", "fps", _float_range(0, True, 10000), 30.0, "consciousness ticker rate (default 30)"),
    ("--ring-capacity", "ring_capacity", _int_min(1), 1000, "consciousness ring capacity (default 1000)"),
    ("--default-lane", "default_lane", _choice(_LANES), "production",
     "drift lane of requests that name none (default production, as in the guide)"),
    ("--header-timeout", "header_timeout", _float_range(0, True), 10.0,
     "seconds a request head may take to arrive (default 10)"),
    ("--body-timeout", "body_timeout", _float_range(0, True), 30.0,
     "seconds a request body may take to arrive (default 30)"),
    ("--keepalive-timeout", "keepalive_timeout", _float_range(0, True), 75.0,
     "seconds an idle keep-alive connection stays open (default 75)"),
    ("--shutdown-grace", "shutdown_grace", _float_range(0, False), 10.0,
     "seconds in-flight requests get to finish on SIGINT/SIGTERM (default 10)"),
    ("--offload-bytes", "offload_bytes", _int_min(0), 64 * 1024,
     "enrich bodies larger than this in worker processes, off the event loop (default 65536)"),
    ("--offload-workers", "offload_workers", _int_min(1), 2, "worker processes for large enrichments (default 2)"),
    ("--enrich-timeout", "enrich_timeout", _float_range(0, True), 30.0,
     "an offloaded enrichment running longer is abandoned with 503 (default 30)"),
    ("--stall-seconds", "stall_seconds", _float_range(0, True), 2.0,
     "the ticker counts as stalled (/health 503) after this long without a tick (default 2)"),
    ("--workers", "workers", _int_min(1), 1,
     "worker processes on the one port (default 1); a supervisor restarts crashed ones"),
    ("--state", "state", _state_url, None,
     "shared drift lane state: redis://HOST:PORT/DB (Redis or Valkey; default: in each process)"),
    ("--log-level", None, _choice(_LOG_LEVELS), "info", "debug, info, warning, error or critical (default info)"),
    ("--log-format", None, _choice(("text", "json")), "text", "text, or json (one object a line) for log shippers"),
    ("--seconds", None, _float_range(0, False), 0.0, "stop after this long (default 0: until SIGINT/SIGTERM)"),
]


def _env_name(flag: str) -> str:
    return "LUKHAS_SERVICE_" + flag.lstrip("-").replace("-", "_").upper()


def _setup_logging(level: str, fmt: str, per_request: bool = False) -> None:
    from lukhas_fast.service import JsonLogFormatter

    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True  # the service writes its own access lines
    # the ethics family's per-evaluation INFO line is a per-request line (and costs more
    # than the evaluation): it comes with the access log, not without it
    logging.getLogger("lukhas_fast.ethics.evaluation").setLevel(logging.NOTSET if per_request else logging.WARNING)


_UNSET: Any = object()


def _resolve_serve_options(args: argparse.Namespace) -> None:
    """Options not given as flags: from ``LUKHAS_SERVICE_*`` (parsed and checked like the
    flag, one-line error and exit 2), else the default."""
    for flag, _field, parse, default, _help in SERVE_OPTIONS + [("--access-log", None, _bool, False, "")]:
        dest = flag.lstrip("-").replace("-", "_")
        if getattr(args, dest) is not _UNSET:
            continue
        name = _env_name(flag)
        text = os.environ.get(name)
        if text is None:
            setattr(args, dest, default)
            continue
        try:
            setattr(args, dest, parse(text))
        except argparse.ArgumentTypeError as exc:
            args.parser.error(f"environment variable {name}: {exc}")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the production HTTP service."""
    prog = args.parser.prog
    _resolve_serve_options(args)
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        print(f"{prog}: error: the service needs the {exc.name or 'aiohttp'} package, not installed: "
              f'pip install "lukhas_fast[service]"', file=sys.stderr)
        return 1
    if args.metrics_port is not None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            args.parser.error('--metrics-port needs prometheus_client: pip install "lukhas_fast[service]"')
    from lukhas_fast.service import ServiceConfig, serve

    values = {field: getattr(args, field) for _, field, _, _, _ in SERVE_OPTIONS if field is not None}
    config = ServiceConfig(access_log=args.access_log, **values)
    try:
        config.validate()
    except ValueError as exc:  # (every value was parsed already; kept for defence in depth)
        args.parser.error(str(exc))
    _setup_logging(args.log_level, args.log_format, config.access_log)
    if config.state is not None:
        try:
            from lukhas_fast.drift import RedisLaneState

            RedisLaneState(config.state).close()  # the URL parses and the redis package imports
        except (ImportError, TypeError, ValueError) as exc:
            args.parser.error(f"--state: {exc}")
    from lukhas_fast._workers import supervise, worker_info

    if config.workers > 1 and not worker_info().supervised:
        if config.state is None:
            logging.getLogger("lukhas_fast.service").warning(
                "--workers %d without --state: each worker keeps its own drift lane state "
                "(use --state redis://host:port/db to share it)", config.workers)
        try:  # the workers re-run this command line (flags and LUKHAS_SERVICE_* variables alike)
            return supervise(args.argv if args.argv is not None else sys.argv[1:], config.host, config.port,
                             config.workers, grace=config.shutdown_grace + 5.0, seconds=args.seconds)
        except OSError as exc:
            print(f"{prog}: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    try:
        return serve(config, seconds=args.seconds)
    except OSError as exc:  # a busy port, an unknown host, a privileged port...
        what = getattr(exc, "strerror", None) or str(exc)
        print(f"{prog}: error: cannot listen on {config.host}:{config.port}"
              f"{'' if config.metrics_port is None else f' (metrics port {config.metrics_port})'}: {what}",
              file=sys.stderr)
        return 1


def _serve_parser(sub: Any) -> None:
    env_doc = "Every option can also be set by an environment variable LUKHAS_SERVICE_<OPTION> " \
              "(e.g. LUKHAS_SERVICE_PORT=9000, LUKHAS_SERVICE_ACCESS_LOG=1); a flag wins over the variable."
    p = sub.add_parser("serve", help="run the aiohttp production service", epilog=env_doc)
    for flag, field, parse, default, helptext in SERVE_OPTIONS:
        dest = flag.lstrip("-").replace("-", "_")
        p.add_argument(flag, dest=dest, type=parse, default=_UNSET, help=f"{helptext} [{_env_name(flag)}]")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=_UNSET,
                   help="one log line per request (logger lukhas_fast.service.access; default off) "
                        "[LUKHAS_SERVICE_ACCESS_LOG]")
    p.set_defaults(func=cmd_serve, parser=p, argv=None)


#: Subcommand registrations: each adds its parser to the subparsers object.
COMMANDS: List[Callable[[Any], None]] = [_bench_parser, _info_parser, _run_parser, _serve_parser]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m lukhas_fast`` and of the ``lukhas-fast`` console script."""
    from lukhas_fast import __version__

    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = "lukhas-fast" if script.startswith("lukhas-fast") else "python -m lukhas_fast"
    parser = _Parser(prog=prog)
    parser.add_argument("--version", action="version", version=f"lukhas_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    if argv is not None:
        args.argv = list(argv)  # serve --workers re-runs this command line in each worker
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
