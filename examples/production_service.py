"""Tutorial 4: the production service, driven by a client written against the guide.

Starts ``lukhas_fast.service`` on 127.0.0.1 (a free port, Prometheus on a second
one, like the guide's ``start_http_server``), sends the guide's requests and reads
only the guide's response fields, then one request per extra route of ours, and
shuts down gracefully.

    python examples/production_service.py --seconds 3
"""

import argparse
from typing import Optional, Sequence
import asyncio

import lukhas_fast

lukhas_fast.install()

from aiohttp import ClientSession  # noqa: E402

from lukhas_fast.service import ServiceConfig, bound_ports, create_app, start_sites  # noqa: E402


async def run(seconds: float) -> bool:
    config = ServiceConfig(port=0, metrics_port=0, fps=30)
    runners = await start_sites(create_app(config))
    base = f"http://127.0.0.1:{bound_ports(runners[0])[0]}"
    prom = f"http://127.0.0.1:{bound_ports(runners[1])[0]}/metrics"
    ok = True
    try:
        async with ClientSession() as http:
            # --- the guide's client -------------------------------------------------------------
            async with http.get(base + "/health") as r:
                h = await r.json()
                print("health:", r.status, h["status"], f"uptime {h['uptime_seconds']:.2f} s",
                      "score", round(h["metrics"]["consciousness_health"], 3))
                ok &= r.status == 200 and h["status"] == "healthy"
            for intent, action in (([1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]),
                                   ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])):
                async with http.post(base + "/drift/analyze",
                                     json={"intent_vector": intent, "action_vector": action}) as r:
                    d = await r.json()
                    print("drift:", d["lane"], "guardian", d["guardian"], f"ema {d['ema']:.3f}")
                    ok &= r.status == 200 and d["lane"] == "production"
            async with http.post(base + "/safety/enrich", json={
                    "plan": {"action": "export_data", "params": {"email": "user@example.com"}},
                    "context": {"user_id": "user456", "source": "user_request"}}) as r:
                tp = (await r.json())["tagged_plan"]
                print("tags:", [(t["name"], t["category"], t["confidence"]) for t in tp["tags"]],
                      f"in {tp['enrichment_time_ms']:.3f} ms")
                ok &= r.status == 200 and [t["name"] for t in tp["tags"]] == ["pii"]
            for kind in ("state_analysis", "coherence_check", "general"):
                async with http.post(base + "/consciousness/analyze", json={"type": kind}) as r:
                    c = await r.json()
                    print(kind + ":", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items()
                                       if k in ("consciousness_state", "awareness_level", "coherence_score",
                                                "coherence_status", "drift_within_limits", "analysis")})
                    ok &= r.status == 200
            await asyncio.sleep(max(0.0, seconds - 0.5))
            async with http.get(base + "/metrics") as r:
                m = await r.json()
                print("metrics: frames", m["consciousness_ticker"]["frames_processed"], "drift ema",
                      round(m["drift_monitor"]["current_ema"], 3), "enricher misses",
                      m["safety_enricher"]["cache_misses"])
                ok &= m["consciousness_ticker"]["frames_processed"] > 0
            async with http.get(prom) as r:
                text = await r.text()
                lines = [ln for ln in text.splitlines() if ln.startswith(("consciousness_requests_total{",
                                                                          "consciousness_system_health"))]
                print("prometheus:", *lines[:4], sep="\n  ")
                ok &= r.status == 200 and bool(lines)
            # --- ours ---------------------------------------------------------------------------
            calls = [
                ("GET", "/livez", None), ("GET", "/readyz", None),
                ("POST", "/consciousness/analyze", {"frame": {"awareness": 0.7}, "priority": 3}),
                ("POST", "/drift/analyze", {"lane": "prod", "intent": [1.0, 0.0, 0.5], "action": [0.9, 0.1, 0.4]}),
                ("POST", "/ethics/evaluate", {"plan": {"action": "external_call", "params": {
                    "url": "https://api.openai.com/v1", "estimated_memory_mb": 1, "estimated_time_seconds": 1}},
                    "enrich": True}),
                ("POST", "/drift/analyze", {"intent": [1.0], "action": "oops"}),  # 400 naming the field
            ]
            for method, path, body in calls:
                async with http.request(method, base + path, json=body, headers={"X-Request-ID": "example"}) as r:
                    print(method, path, r.status, (await r.text())[:120])
                    ok &= r.status < 500 and r.headers["X-Request-ID"] == "example"
    finally:
        for runner in runners:
            await runner.cleanup()
    return bool(ok)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    return 0 if asyncio.run(run(args.seconds)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
