"""``GET /openapi.json`` describes every route, and real responses (successes and errors, the guide's
bodies and ours) validate against it: the description cannot drift from the code."""

from __future__ import annotations

import asyncio
import gzip

import pytest

pytest.importorskip("aiohttp")
jsonschema = pytest.importorskip("jsonschema")
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402

VEC = [0.5, -0.25, 1.0]
CALLS = [
    # (method, path, json body or raw bytes, headers, expected status)
    ("GET", "/health", None, None, 200),
    ("GET", "/livez", None, None, 200),
    ("GET", "/readyz", None, None, 200),
    ("GET", "/metrics", None, None, 200),
    ("GET", "/openapi.json", None, None, 200),
    ("POST", "/drift/analyze", {"intent_vector": VEC, "action_vector": VEC}, None, 200),
    ("POST", "/drift/analyze", {"intent": VEC, "action": [0.0, 1.0, 0.0], "lane": "prod"}, None, 200),
    ("POST", "/drift/analyze", {"intent": VEC}, None, 400),
    ("POST", "/drift/analyze", b"{", None, 400),
    ("POST", "/consciousness/analyze", {"type": "state_analysis"}, None, 200),
    ("POST", "/consciousness/analyze", {"type": "coherence_check"}, None, 200),
    ("POST", "/consciousness/analyze", {"type": "other"}, None, 200),
    ("POST", "/consciousness/analyze", {}, None, 200),
    ("POST", "/consciousness/analyze", {"frame": {"a": 1}, "priority": 2}, None, 200),
    ("POST", "/consciousness/analyze", {"type": 1}, None, 400),
    ("POST", "/safety/enrich", {"plan": {"action": "send_email", "params": {"to": "a@b.com"}},
                                "context": {"user_id": "u1"}}, None, 200),
    ("POST", "/safety/enrich", {"plan": 3}, None, 400),
    ("POST", "/safety/enrich", b"x" * 5000, None, 413),
    ("POST", "/safety/enrich", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"}, 400),
    ("POST", "/safety/enrich", gzip.compress(b'{"plan": {}}'), {"Content-Encoding": "br2"}, 415),
    ("POST", "/ethics/evaluate", {"plan": {"action": "delete_user_data"}, "enrich": True}, None, 200),
    ("POST", "/ethics/evaluate", {"plan": {"action": "read"}}, None, 200),
    ("POST", "/ethics/evaluate", {"plan": {}, "enrich": 1}, None, 400),
]


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_app(ServiceConfig(fps=200, max_body=4096)))


def _schema(doc, path, method, status, content_type="application/json"):
    op = doc["paths"][path][method.lower()]
    resp = op["responses"][str(status)]
    return resp["content"][content_type]["schema"], op


def _check(schema, value):
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(value)


async def test_every_route_is_described(client):
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    # (the "*" /{tail} catch-all only answers unknown paths and wrong methods with JSON 404/405)
    routes = {(r.method, r.resource.canonical) for r in client.app.router.routes() if r.method not in ("HEAD", "*")}
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == described


async def test_real_responses_validate_against_the_document(client):
    doc = await (await client.get("/openapi.json")).json()
    await asyncio.sleep(0.05)  # a few ticks
    for method, path, body, headers, want in CALLS:
        kw = {"headers": dict(headers or {})}
        if isinstance(body, bytes):
            kw["data"] = body
            kw["headers"].setdefault("Content-Type", "application/json")
        elif body is not None:
            kw["json"] = body
        r = await client.request(method, path, **kw)
        assert r.status == want, (method, path, await r.text())
        schema, op = _schema(doc, path, method, r.status)
        data = await r.json()
        _check(schema, data)
        if method == "POST" and r.status == 200:  # the request body matches its schema too
            _check(op["requestBody"]["content"]["application/json"]["schema"], body)
    # the schemas reject what they should (they are not vacuous)
    schema, _ = _schema(doc, "/drift/analyze", "POST", 200)
    with pytest.raises(jsonschema.ValidationError):
        _check(schema, {"lane": "prod", "drift": 0.1, "ema": 0.1, "guardian": "maybe", "n": 1})
    schema, _ = _schema(doc, "/safety/enrich", "POST", 200)
    with pytest.raises(jsonschema.ValidationError):
        _check(schema, {"tags": [], "tag_names": []})


async def test_error_status_bodies_validate(client):
    doc = await (await client.get("/openapi.json")).json()
    r = await client.get("/nope")
    assert r.status == 404
    _check(doc["components"]["schemas"]["Error"], await r.json())
    r = await client.post("/health")
    assert r.status == 405
    _check(doc["components"]["schemas"]["Error"], await r.json())
    r = await client.get("/metrics/prometheus")
    schema, _ = _schema(doc, "/metrics/prometheus", "GET", 200, "text/plain")
    _check(schema, await r.text())
    # 503s: unhealthy and not ready
    svc = client.app[SERVICE_KEY]
    await svc.on_shutdown(client.app)
    for path in ("/health", "/readyz"):
        r = await client.get(path)
        assert r.status == 503
        schema, _ = _schema(doc, path, "GET", 503)
        _check(schema, await r.json())
