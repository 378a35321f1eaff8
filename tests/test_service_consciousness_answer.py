"""``POST /consciousness/analyze`` answers a frame without building its dicts: the head
per tick (``_ACCEPTED_PARTS``) and the ring's statistics written by the ring
(``DecimatingRing._backpressure_json``).  Its bytes, status and headers must equal the
answer encoded whole, the way the handler did before (the reference below), through
the ring's filling, drops and decimations, across tick changes, with the ring's
``get_backpressure_stats`` overridden and with the pieces disabled."""

from __future__ import annotations

import json
import types

import pytest

pytest.importorskip("aiohttp")
from lukhas_fast import service  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


def _reference(svc) -> bytes:
    return service._dumps({"accepted": True, "tick": svc.ticker.tick_count, "buffer": svc.ring.get_backpressure_stats()})


async def _post(client, svc, frame, priority=None) -> bytes:
    body = {"frame": frame} if priority is None else {"frame": frame, "priority": priority}
    r = await client.post("/consciousness/analyze", data=json.dumps(body), headers={"X-Request-ID": "rid-1"})
    got = await r.read()
    assert r.status == 200 and r.headers["Content-Type"] == "application/json" and r.headers["X-Request-ID"] == "rid-1"
    assert got == _reference(svc)  # (no ticker: nothing pushes between the answer and the reference)
    return got


def test_the_pieces_are_used_with_orjson():
    pytest.importorskip("orjson")
    assert service._ACCEPTED_PARTS == (b'{"accepted":true,"tick":', b',"buffer":', b"}")


async def test_answers_equal_the_whole_encoding(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False, ring_capacity=16)))
    svc = client.app[SERVICE_KEY]
    seen = set()
    for i in range(60):  # fills, drops (threshold 0.8) and decimations of a 16-frame ring
        seen.add(await _post(client, svc, {"i": i, "v": i / 7}, priority=(i % 3) or None))
    stats = svc.ring.get_backpressure_stats()
    assert stats["total_drops"] > 0 and stats["decimation_events"] > 0 and len(seen) == 60
    # the tick in the head follows the ticker, remembered per tick
    real = svc.ticker
    try:
        for tick in (0, 5, 5, 123456789, 2**62, 0):
            svc.ticker = types.SimpleNamespace(tick_count=tick)
            got = await _post(client, svc, {"t": tick})
            assert got.startswith(b'{"accepted":true,"tick":%d,"buffer":{' % tick)
            assert svc._accepted_head[0] == tick
    finally:
        svc.ticker = real
    svc.ring.reset_stats()
    await _post(client, svc, {"after": "reset"})


async def test_fallbacks_give_the_same_answers(aiohttp_client, monkeypatch):
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False, ring_capacity=8)))
    svc = client.app[SERVICE_KEY]
    # a ring whose statistics are overridden on the instance: that dict is the answer's
    svc.ring.get_backpressure_stats = lambda: {"mine": 1.5}
    assert await _post(client, svc, {"a": 1}) == b'{"accepted":true,"tick":0,"buffer":{"mine":1.5}}'
    del svc.ring.get_backpressure_stats
    await _post(client, svc, {"a": 2})
    # no pieces (an encoder whose ring encoding did not check out): the whole answer
    monkeypatch.setattr(service, "_ACCEPTED_PARTS", None)
    for i in range(12):
        await _post(client, svc, {"b": i})
    # a tick that is not an int (another ticker): the whole answer
    monkeypatch.undo()
    real = svc.ticker
    try:
        svc.ticker = types.SimpleNamespace(tick_count=3.0)
        assert (await _post(client, svc, {"c": 1})).startswith(b'{"accepted":true,"tick":3.0,')
    finally:
        svc.ticker = real


async def test_bad_frames_still_fail_the_same_way(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False)))
    svc = client.app[SERVICE_KEY]
    for body, field in (({"frame": 3}, "frame"), ({"frame": {}, "priority": "high"}, "priority"),
                        ({"frame": {}, "priority": True}, "priority")):
        r = await client.post("/consciousness/analyze", json=body)
        assert r.status == 400 and (await r.json())["field"] == field
    assert svc.ring.get_backpressure_stats()["total_pushes"] == 0 and svc.frames_submitted == 0
