"""Tutorial 4: the production service.

Starts ``lukhas_fast.service`` on 127.0.0.1 (a free port), sends one request
to every route with aiohttp, prints the answers, and shuts down gracefully.

    python examples/production_service.py --seconds 3
"""

import argparse
from typing import Optional, Sequence
import asyncio
import socket

import lukhas_fast

lukhas_fast.install()

from aiohttp import ClientSession, web  # noqa: E402

from lukhas_fast.service import ServiceConfig, create_app  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run(seconds: float) -> bool:
    port = _free_port()
    runner = web.AppRunner(create_app(ServiceConfig(port=port, fps=30)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    ok = True
    try:
        async with ClientSession() as http:
            calls = [
                ("GET", "/health", None),
                ("POST", "/consciousness/analyze", {"frame": {"awareness": 0.7}, "priority": 3}),
                ("POST", "/safety/enrich", {"plan": {"action": "send_email", "params": {"to": "a@b.com"}}}),
                ("POST", "/drift/analyze", {"lane": "prod", "intent": [1.0, 0.0, 0.5], "action": [0.9, 0.1, 0.4]}),
                ("POST", "/ethics/evaluate", {"plan": {"action": "external_call", "params": {
                    "url": "https://api.openai.com/v1", "estimated_memory_mb": 1, "estimated_time_seconds": 1}},
                    "enrich": True}),
                ("POST", "/drift/analyze", {"intent": [1.0], "action": "oops"}),
            ]
            for method, path, body in calls:
                async with http.request(method, base + path, json=body) as r:
                    print(method, path, r.status, (await r.text())[:160])
                    ok &= r.status < 500
            await asyncio.sleep(max(0.0, seconds - 0.5))
            async with http.get(base + "/metrics") as r:
                m = await r.json()
                print("ticker ticks:", m["ticker"]["tick_count"], "ring:", m["ring"]["current_size"])
                ok &= bool(m["ticker"]["tick_count"] > 0)
    finally:
        await runner.cleanup()
    return ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    return 0 if asyncio.run(run(args.seconds)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
