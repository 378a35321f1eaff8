"""Pre-fork supervisor for ``serve --workers N``.

The parent binds the listening socket once and starts N worker processes,
fresh interpreters running the same ``serve`` command line, which inherit the
socket's file descriptor: each worker runs its own event loop and accepts from
the shared socket, so the kernel spreads connections over the workers and a
worker that dies loses only its own in-flight requests.  The parent

* restarts a worker that exits unexpectedly and logs it (a worker that keeps
  dying within a second of its start is restarted with a growing delay, up
  to 10 s);
* on SIGTERM/SIGINT sends SIGTERM to every worker (each one stops accepting,
  lets its in-flight requests finish and stops its ticker), waits for them up
  to ``grace`` seconds (then SIGKILL) and returns 0;
* gives the workers one Prometheus multiprocess directory
  (``PROMETHEUS_MULTIPROC_DIR``, a fresh temporary directory unless already
  set) so that one scrape of any worker's ``/metrics/prometheus`` covers all
  of them, and marks dead workers' live gauges as dead.

Workers learn their role from the environment: :data:`ENV_FD` (the inherited
socket), :data:`ENV_ID` (0..N-1) and :data:`ENV_COUNT` (N).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

__all__ = ["ENV_FD", "ENV_ID", "ENV_COUNT", "WorkerInfo", "worker_info", "bind_socket", "Supervisor"]

logger = logging.getLogger("lukhas_fast.service.workers")

ENV_FD = "LUKHAS_FAST_LISTEN_FD"
ENV_ID = "LUKHAS_FAST_WORKER_ID"
ENV_COUNT = "LUKHAS_FAST_WORKERS"
PROM_DIR = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class WorkerInfo:
    """Who this process is: ``id`` (0-based), ``count`` (N), ``pid``; ``fd``: the inherited socket, if any."""

    id: int = 0
    count: int = 1
    pid: int = field(default_factory=os.getpid)
    fd: Optional[int] = None

    @property
    def supervised(self) -> bool:
        """True in a worker started by :class:`Supervisor`."""
        return self.fd is not None


def worker_info() -> WorkerInfo:
    """This process's :class:`WorkerInfo` (from the supervisor's environment variables)."""
    fd = os.environ.get(ENV_FD)
    if fd is None:
        return WorkerInfo()
    return WorkerInfo(int(os.environ.get(ENV_ID, "0")), int(os.environ.get(ENV_COUNT, "1")), os.getpid(), int(fd))


def bind_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` contains ':')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent: Optional[int] = None) -> None:  # pragma: no cover - runs in a child process
    """Linux: this process gets SIGTERM when the thread that started it exits (no orphaned
    workers; a supervisor, or a service worker for its offload pool, that is killed
    cannot stop its children itself).  ``parent``: the parent's pid, checked after the
    request, in case the parent died before it (the signal would then never come)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Supervisor(command, sock, workers, *, grace=30.0)

    ``command``: the worker command line (e.g. ``[sys.executable, "-m",
    "lukhas_fast", "serve", ...]``); ``sock``: the bound listening socket;
    ``workers``: N >= 1.  :meth:`run` blocks until SIGTERM/SIGINT.
    """

    def __init__(self, command: Sequence[str], sock: socket.socket, workers: int, *, grace: float = 30.0) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        self.command = list(command)
        self.sock = sock
        self.workers = workers
        self.grace = grace
        self.procs: Dict[int, subprocess.Popen] = {}
        self.started: Dict[int, float] = {}
        self.failures: Dict[int, int] = {}
        self.restarts = 0
        self._stop = False
        self._own_prom_dir: Optional[str] = None

    # -- environment ----------------------------------------------------------------
    def _env(self, wid: int) -> Dict[str, str]:
        env = dict(os.environ)
        env[ENV_FD] = str(self.sock.fileno())
        env[ENV_ID] = str(wid)
        env[ENV_COUNT] = str(self.workers)
        if self._prom_dir:
            env[PROM_DIR] = self._prom_dir
        return env

    def _setup_prometheus(self) -> None:
        self._prom_dir = os.environ.get(PROM_DIR)
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            self._prom_dir = None
            return
        if not self._prom_dir:
            self._own_prom_dir = self._prom_dir = tempfile.mkdtemp(prefix="lukhas-prom-")

    def _mark_dead(self, pid: int) -> None:
        if not self._prom_dir:
            return
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self._prom_dir)
        except Exception:  # pragma: no cover - best effort
            logger.debug("mark_process_dead(%d) failed", pid, exc_info=True)

    # -- workers ------------------------------------------------------------------------
    def _spawn(self, wid: int) -> None:
        proc = subprocess.Popen(self.command, env=self._env(wid), pass_fds=(self.sock.fileno(),),
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        self.procs[wid] = proc
        self.started[wid] = time.monotonic()
        logger.info("worker %d started (pid %d)", wid, proc.pid)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop = True

    def run(self, seconds: float = 0.0) -> int:
        """Start the workers, keep them running until SIGTERM/SIGINT (or ``seconds``), stop them; returns 0."""
        self._setup_prometheus()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        pending: Dict[int, float] = {}  # worker id -> monotonic time of its (re)start
        try:
            for wid in range(self.workers):
                self._spawn(wid)
            logger.info("%d workers on %s", self.workers, self.sock.getsockname())
            until = time.monotonic() + seconds if seconds and seconds > 0 else None
            while not self._stop:
                if until is not None and time.monotonic() >= until:
                    break
                now = time.monotonic()
                for wid, proc in list(self.procs.items()):
                    rc = proc.poll()
                    if rc is None:
                        if now - self.started[wid] > 5.0:
                            self.failures[wid] = 0
                        continue
                    del self.procs[wid]
                    self._mark_dead(proc.pid)
                    quick = now - self.started[wid] < 1.0
                    self.failures[wid] = self.failures.get(wid, 0) + 1 if quick else 0
                    delay = min(10.0, 0.5 * (2 ** (self.failures[wid] - 1))) if quick else 0.0
                    logger.error("worker %d (pid %d) exited with %s; restarting%s", wid, proc.pid,
                                 _describe(rc), f" in {delay:.1f} s" if delay else "")
                    pending[wid] = now + delay
                for wid, when in list(pending.items()):
                    if when <= now and not self._stop:
                        del pending[wid]
                        self.restarts += 1
                        self._spawn(wid)
                time.sleep(0.05)
            logger.info("stopping %d workers", len(self.procs))
            self._terminate()
            return 0
        finally:
            self._terminate()
            for s, h in old.items():
                signal.signal(s, h)
            if self._own_prom_dir:
                shutil.rmtree(self._own_prom_dir, ignore_errors=True)

    def _terminate(self) -> None:
        procs = list(self.procs.values())
        self.procs.clear()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker pid %d did not stop within %.0f s: killing it", p.pid, self.grace)
                p.kill()
                p.wait()


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:  # pragma: no cover
            return f"signal {-rc}"
    return f"status {rc}"


def supervise(argv: Sequence[str], host: str, port: int, workers: int, grace: float = 30.0,
              seconds: float = 0.0) -> int:
    """Bind ``host:port`` and run ``python -m lukhas_fast <argv>`` in ``workers`` processes
    (until SIGTERM/SIGINT, or ``seconds``)."""
    sock = bind_socket(host, port)
    try:
        return Supervisor([sys.executable, "-m", "lukhas_fast", *argv], sock, workers, grace=grace).run(seconds)
    finally:
        sock.close()
