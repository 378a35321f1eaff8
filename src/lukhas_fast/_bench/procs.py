"""Real external processes for the service bench and the tests: a
``redis-server`` on a free loopback port in a temporary directory, and a
``python -m lukhas_fast serve`` process.  Nothing here is mocked: the bench
and the tests talk to the real programs over 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, List, Optional, Sequence

__all__ = ["free_port", "RedisServer", "ServiceProcess", "wait_port"]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, proc: Optional[subprocess.Popen] = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.02)


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a free loopback port.

    ``start()`` / ``stop()`` may be called repeatedly (the port is kept, so a
    client can watch the store go away and come back).  Use as a context manager.
    """

    def __init__(self, port: Optional[int] = None, executable: Optional[str] = None) -> None:
        self.executable = executable or shutil.which("redis-server")
        if self.executable is None:
            raise FileNotFoundError("redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)")
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="lukhas-redis-")
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        args: List[str] = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", os.path.join(self.dir, "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process of ``proc``'s process group (``proc`` started with
    ``start_new_session=True``): the server and whatever it started (offload worker
    processes, ``--workers`` children), even after the server itself has exited --
    a killed server's children would otherwise keep its pipes open, and a
    ``communicate()`` on them would wait forever."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the whole group is gone already
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


class ServiceProcess:
    """``python -m lukhas_fast serve --port P ARGS...`` as a child process.

    ``cpu``: pin it (and its workers) to this CPU with ``taskset`` when available.
    """

    def __init__(self, args: Sequence[str] = (), port: Optional[int] = None, cpu: Optional[int] = None,
                 env: Optional[dict] = None, log: Optional[str] = None) -> None:
        self.port = port or free_port()
        cmd = [sys.executable, "-m", "lukhas_fast", "serve", "--port", str(self.port), *args]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu)] + cmd
        self.cmd = cmd
        self.env = dict(os.environ, **(env or {}))
        self.log = log
        self.proc: Optional[subprocess.Popen] = None
        self._logfh: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServiceProcess":
        self._logfh = open(self.log, "ab") if self.log else subprocess.DEVNULL
        # own process group: stop() can then kill the server with its children if it must
        self.proc = subprocess.Popen(self.cmd, stdout=self._logfh, stderr=self._logfh, env=self.env,
                                     start_new_session=True)
        wait_port(self.port, timeout, proc=self.proc)
        # the port may be bound by the parent before the workers are up: wait for an answer
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service did not come up: {self.cmd}") from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> Optional[int]:
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    rc = proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    kill_group(proc)
                    raise
            else:
                rc = proc.returncode
        if self._logfh not in (None, subprocess.DEVNULL):
            self._logfh.close()
        self._logfh = None
        return rc

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
