"""``serve`` as an operator meets it: flags and LUKHAS_SERVICE_* variables (flags win), one-line errors
with exit 2 (bad values) or 1 (cannot listen, missing extra), --version and the console script, the
startup line, JSON logs with request ids, the metrics port and the shutdown grace period."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("aiohttp")
from lukhas_fast.__main__ import main  # noqa: E402
from lukhas_fast._bench.procs import kill_group  # noqa: E402
from lukhas_fast.service import ServiceConfig, create_app, start_sites  # noqa: E402


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv,needle", [
    (["--port", "99999"], "--port"),
    (["--port", "http"], "--port"),
    (["--metrics-port", "-1"], "--metrics-port"),
    (["--fps", "0"], "--fps"),
    (["--fps", "nan"], "--fps"),
    (["--ring-capacity", "0"], "--ring-capacity"),
    (["--max-body", "-5"], "--max-body"),
    (["--max-depth", "0"], "--max-depth"),
    (["--header-timeout", "0"], "--header-timeout"),
    (["--body-timeout", "inf"], "--body-timeout"),
    (["--shutdown-grace", "-1"], "--shutdown-grace"),
    (["--default-lane", "mars"], "--default-lane"),
    (["--log-level", "loud"], "--log-level"),
    (["--log-format", "xml"], "--log-format"),
    (["--host", ""], "--host"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_bad_flags_are_one_line_and_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(["serve"] + argv)
    assert exc.value.code == 2
    err = _one_line_error(capsys)
    assert needle in err and "error:" in err


@pytest.mark.parametrize("name,value", [
    ("LUKHAS_SERVICE_PORT", "abc"), ("LUKHAS_SERVICE_FPS", "-3"), ("LUKHAS_SERVICE_MAX_BODY", "1.5"),
    ("LUKHAS_SERVICE_ACCESS_LOG", "maybe"), ("LUKHAS_SERVICE_DEFAULT_LANE", "nowhere"),
])
def test_bad_environment_values_are_one_line_and_exit_2(capsys, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        main(["serve"])
    assert exc.value.code == 2
    err = _one_line_error(capsys)
    assert f"environment variable {name}" in err and repr(value) in err


def test_a_flag_wins_over_a_bad_environment_value(capsys, monkeypatch):
    """The variable is not even read when the flag is given: a busy port then fails with exit 1."""
    monkeypatch.setenv("LUKHAS_SERVICE_PORT", "abc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port), "--log-level", "error"]) == 1
    err = _one_line_error(capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in err and "address already in use" in err


def test_an_address_that_is_not_ours_is_one_line_and_exit_1(capsys):
    assert main(["serve", "--host", "192.0.2.1", "--port", "0", "--log-level", "error"]) == 1  # TEST-NET-1
    err = _one_line_error(capsys)
    assert "cannot listen on 192.0.2.1:0" in err


def test_missing_service_extra_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # import aiohttp now raises ImportError
    assert main(["serve"]) == 1
    err = _one_line_error(capsys)
    assert 'pip install "lukhas_fast[service]"' in err


def test_version(capsys):
    from lukhas_fast import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"lukhas_fast {__version__}"


def test_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "lukhas-fast")
    assert os.path.exists(script), "the lukhas-fast console script is installed with the package"
    from lukhas_fast import __version__

    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"lukhas_fast {__version__}"
    out = subprocess.run([script, "serve", "--port", "70000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("lukhas-fast serve: error: argument --port")


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def test_serve_logs_json_with_request_ids_env_config_and_metrics_port():
    env = dict(os.environ, LUKHAS_SERVICE_LOG_FORMAT="json", LUKHAS_SERVICE_ACCESS_LOG="1", LUKHAS_SERVICE_FPS="1",
               LUKHAS_SERVICE_DEFAULT_LANE="candidate")
    proc = subprocess.Popen([sys.executable, "-m", "lukhas_fast", "serve", "--port", "0", "--metrics-port", "0",
                             "--fps", "50"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # own process group: see the finally clause
    lines = []
    try:
        deadline = time.time() + 120
        while True:
            line = proc.stderr.readline()
            assert line and time.time() < deadline, lines
            lines.append(line)
            rec = json.loads(line)  # every line is one JSON object
            if "listening on" in rec["message"]:
                break
        msg = rec["message"]
        assert rec["logger"] == "lukhas_fast.service" and rec["level"] == "info"
        assert "backends: ring=" in msg and "python " in msg and "aiohttp " in msg and "lukhas_fast " in msg
        port = int(msg.split("http://127.0.0.1:")[1].split(" ")[0])
        mport = int(msg.split("Prometheus exposition on http://127.0.0.1:")[1].split("/")[0])
        status, headers, body = _get(f"http://127.0.0.1:{port}/metrics", {"X-Request-ID": "ops-42"})
        m = json.loads(body)
        assert status == 200 and headers["X-Request-ID"] == "ops-42"
        assert m["consciousness_ticker"]["fps"] == 50  # the flag wins over LUKHAS_SERVICE_FPS
        assert m["drift_monitor"]["lane"] == "candidate"  # from LUKHAS_SERVICE_DEFAULT_LANE
        _get(f"http://127.0.0.1:{port}/health")
        status, _, text = _get(f"http://127.0.0.1:{mport}/metrics")
        assert status == 200 and b'consciousness_requests_total{endpoint="metrics",status="success"}' in text
        assert b"consciousness_system_health" in text
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0
        records = [json.loads(x) for x in lines + rest.splitlines() if x.strip()]
        access = [r for r in records if r["logger"] == "lukhas_fast.service.access"]
        mine = [r for r in access if r.get("request_id") == "ops-42"]
        assert len(mine) == 1 and mine[0]["status"] == 200 and mine[0]["path"] == "/metrics"
        assert mine[0]["duration_ms"] >= 0 and mine[0]["method"] == "GET"
        assert any(r["message"] == "stopped" for r in records)
    finally:
        # the whole group: a killed server's offload worker processes would keep stderr open
        # and communicate() would wait for them forever
        kill_group(proc)
        if not proc.stderr.closed:
            proc.communicate(timeout=30)


@pytest.mark.parametrize("grace,handler_s,finishes", [(5.0, 0.3, True), (0.2, 3.0, False)])
async def test_shutdown_grace(grace, handler_s, finishes):
    """In-flight requests finish within the grace period; past it they are cancelled and shutdown
    completes anyway."""
    import aiohttp
    from aiohttp import web

    config = ServiceConfig(port=0, fps=50, shutdown_grace=grace)
    app = create_app(config)
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(handler_s)
        return web.json_response({"done": True})

    app.router.add_get("/slow", slow)
    runners = await start_sites(app)
    from lukhas_fast.service import bound_ports

    port = bound_ports(runners[0])[0]
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.wait_for(started.wait(), 10)
        t0 = time.monotonic()
        for r in runners:
            await r.cleanup()
        took = time.monotonic() - t0
        if finishes:
            resp = await pending
            assert resp.status == 200 and (await resp.json()) == {"done": True}
            resp.release()
        else:
            with pytest.raises(aiohttp.ClientError):
                resp = await pending
                await resp.read()
            assert took < handler_s


@pytest.mark.parametrize("access_log", [False, True])
def test_serve_logging_per_evaluation_lines_follow_the_access_log(access_log, caplog):
    """The ethics family's per-evaluation INFO line is a per-request line: ``serve`` drops it unless
    the access log is on, and keeps the family's other INFO lines either way."""
    import logging

    from lukhas_fast.__main__ import _setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    ev = logging.getLogger("lukhas_fast.ethics.evaluation")
    try:
        _setup_logging("info", "text", access_log)
        assert ev.isEnabledFor(logging.INFO) is access_log
        assert logging.getLogger("lukhas_fast.ethics").isEnabledFor(logging.INFO)
        assert ev.isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ev.setLevel(logging.NOTSET)
