"""The service's OpenAPI 3.1 description (``GET /openapi.json``).

Schemas are JSON Schema 2020-12, written inline (no ``$ref``) so that a
response can be validated against its schema with any JSON Schema
validator; ``tests/test_service_openapi.py`` validates real responses of
every route against this document, so it cannot drift from the code.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

__all__ = ["openapi_document"]

_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_STRS = {"type": "array", "items": _STR}
_OBJ = {"type": "object"}


def _obj(props: Dict[str, Any], required: Optional[List[str]] = None, extra: bool = True) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "object", "properties": props, "required": list(props) if required is None
                           else required}
    if not extra:
        out["additionalProperties"] = False
    return out


ERROR = _obj({
    "error": {"type": "string", "description": "what was wrong"},
    "field": {"type": ["string", "null"], "description": "the offending field (body, a JSON key, a header)"},
    "request_id": {"type": "string", "description": "the X-Request-ID of the request"},
})

LANES = ["experimental", "candidate", "prod", "labs", "production"]
TICKER_STATES = ["running", "stalled", "stopped", "disabled"]

RING_STATS = _obj({
    "capacity": _INT, "current_size": _INT, "utilization": _NUM, "pressure_threshold": _NUM,
    "total_pushes": _INT, "total_drops": _INT, "drop_rate": _NUM, "decimation_events": _INT,
    "decimation_factor": _INT, "decimation_strategy": _STR, "last_decimation_utilization": _NUM,
})

LANE_STATE = _obj({"lane": _STR, "ema": _NUM, "n": _INT, "total_analyses": _INT})

HEALTH = _obj({
    "status": {"enum": ["healthy", "unhealthy"]},
    "uptime_seconds": _NUM,
    "components": _obj({
        "consciousness_ticker": {"enum": TICKER_STATES},
        "drift_monitor": {"enum": ["active"]},
        "safety_enricher": {"enum": ["operational"]},
        "ethics_engine": {"enum": ["operational"]},
        "service": {"enum": ["ready", "not_ready"]},
    }),
    "metrics": _obj({
        "consciousness_health": _UNIT,
        "health_factors": _obj({"service": _UNIT, "ticker": _UNIT, "drift": _UNIT, "ring": _UNIT, "score": _UNIT}),
    }),
    "uptime_s": _NUM,
    "ticker_running": {"type": "boolean"},
    "tick_count": _INT,
})

METRICS = _obj({
    "consciousness_ticker": _obj({"fps": _NUM, "measured_fps": _NUM, "buffer_utilization": _NUM,
                                  "frames_processed": _INT, "state": {"enum": TICKER_STATES}}),
    "drift_monitor": _obj({"current_ema": _NUM, "lane": {"enum": LANES}, "total_analyses": _INT, "window": _INT}),
    "safety_enricher": _obj({"cache_hits": _INT, "cache_misses": _INT}, required=["cache_hits", "cache_misses"]),
    "consciousness_health": _UNIT,
    "ticker": _obj({"fps_target": _NUM, "tick_count": _INT, "running": {"type": "boolean"},
                    "ticks_processed": _INT, "subscriber_exceptions": _INT},
                   required=["fps_target", "tick_count", "running", "ticks_processed", "subscriber_exceptions"]),
    "ring": RING_STATS,
    "drift": {"type": "object", "additionalProperties": LANE_STATE},
    "enricher": _OBJ,
    "engine": _OBJ,
    "backend": {"type": "object", "additionalProperties": _STR},
    "offloaded_enrichments": _obj({"done": _INT, "failed": _INT, "workers": _INT}),
})

_ANALYSIS_COMMON = {"timestamp": _NUM, "type": _STR, "lane": {"enum": LANES}, "drift_ema": _NUM,
                    "measured_fps": _NUM, "target_fps": _NUM, "buffer_utilization": _NUM, "drop_rate": _NUM,
                    "subscriber_errors": _INT}

CONSCIOUSNESS_REQUEST = {
    "type": "object",
    "description": "With `frame`: submit a frame to the consciousness ring (ours). Otherwise an analysis "
                   "of the live state chosen by `type` (the guide's): state_analysis, coherence_check, or "
                   "anything else (general).",
    "properties": {"type": {"type": "string", "default": "general"}, "frame": _OBJ,
                   "priority": {"type": "number"}},
}

CONSCIOUSNESS_RESPONSE = {"anyOf": [
    _obj({"accepted": {"const": True}, "tick": _INT, "buffer": RING_STATS}),
    _obj(dict(_ANALYSIS_COMMON, consciousness_state={"enum": ["active", "degraded", "stalled", "stopped"]},
              awareness_level=_UNIT, coherence_score=_UNIT, system_health=_UNIT)),
    _obj(dict(_ANALYSIS_COMMON, coherence_status={"enum": ["stable", "drifting", "unstable"]},
              coherence_score=_UNIT, components_synchronized={"type": "boolean"},
              drift_within_limits={"type": "boolean"})),
    _obj(dict(_ANALYSIS_COMMON, analysis={"enum": ["general_consciousness_ok", "general_consciousness_degraded"]},
              system_health=_UNIT)),
]}

_GUIDE_TAG = _obj({"name": _STR, "category": _STR, "confidence": _UNIT, "description": _STR})
_TAG = _obj({"name": _STR, "category": _STR, "confidence": _UNIT, "source": _STR, "metadata": _OBJ})

SAFETY_REQUEST = _obj({"plan": {"type": ["object", "null"],
                                "description": "the plan; missing or null: the empty plan, as in the guide"},
                       "context": _OBJ}, required=[])
SAFETY_RESPONSE = _obj({
    "tagged_plan": _obj({"original_plan": _OBJ, "tags": {"type": "array", "items": _GUIDE_TAG},
                         "enrichment_time_ms": _NUM}),
    "tags": {"type": "array", "items": _TAG},
    "tag_names": _STRS,
    "enrichment_time_ms": _NUM,
    "enrichment_context": _OBJ,
})

_VEC = {"type": "array", "items": {"type": ["number", "boolean"]}, "minItems": 1, "maxItems": 65536}
DRIFT_REQUEST = {
    "type": "object",
    "description": "`intent`/`action` (ours) or `intent_vector`/`action_vector` (the guide's), same length; "
                   "`lane` defaults to the service's default lane (production).",
    "properties": {"intent": _VEC, "action": _VEC, "intent_vector": _VEC, "action_vector": _VEC,
                   "lane": {"enum": LANES}},
    "allOf": [{"anyOf": [{"required": ["intent"]}, {"required": ["intent_vector"]}]},
              {"anyOf": [{"required": ["action"]}, {"required": ["action_vector"]}]}],
}
DRIFT_RESPONSE = _obj({"lane": _STR, "drift": _NUM, "ema": _NUM, "guardian": {"enum": ["allow", "warn", "block"]},
                       "n": _INT})

ETHICS_REQUEST = _obj({"plan": _OBJ, "context": _OBJ, "enrich": {"type": "boolean", "default": False}},
                      required=["plan"])
ETHICS_RESPONSE = _obj({
    "action": {"enum": ["allow", "warn", "block"]}, "reasons": _STRS, "reason_codes": _STRS,
    "triggered_rules": _STRS, "plan_hash": _STR, "facts_hash": _STR, "evaluation_time_ms": _NUM,
    "safety_tags": {"type": ["array", "null"], "items": _STR},
})


def _json_content(schema: Dict[str, Any]) -> Dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> Dict[str, Any]:
    text = {400: "bad request (malformed JSON, nesting too deep, a bad field, undecodable compressed body)",
            404: "no such route", 405: "method not allowed",
            408: "the request body did not arrive in time (the connection closes)",
            413: "body larger than max_body", 415: "unsupported Content-Encoding",
            500: "internal error", 501: "prometheus_client is not installed", 503: "not ready / unhealthy"}
    return {str(c): {"description": text[c], "content": _json_content(ERROR)} for c in codes}


_POST_ERRORS = (400, 408, 413, 415, 500)


def _post(summary: str, request: Dict[str, Any], response: Dict[str, Any]) -> Dict[str, Any]:
    return {"post": {
        "summary": summary,
        "parameters": [_REQUEST_ID],
        "requestBody": {"required": True, "content": _json_content(request),
                        "description": "JSON; Content-Encoding identity, gzip or deflate"},
        "responses": dict({"200": {"description": "OK", "content": _json_content(response)}},
                          **_errors(*_POST_ERRORS)),
    }}


def _get(summary: str, response: Dict[str, Any], *errors: int, status: str = "200") -> Dict[str, Any]:
    return {"get": {
        "summary": summary,
        "parameters": [_REQUEST_ID],
        "responses": dict({status: {"description": "OK", "content": _json_content(response)}}, **_errors(*errors)),
    }}


_REQUEST_ID = {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"},
               "description": "echoed in the response header and error bodies; generated when absent or invalid "
                              "(1-128 printable ASCII characters without spaces)"}

_HEALTH_503 = {"description": "unhealthy (same fields)", "content": _json_content(HEALTH)}
_READY_503 = {"description": "not ready (starting or shutting down)",
              "content": _json_content(_obj({"status": {"enum": ["not_ready"]}}))}


def openapi_document() -> Dict[str, Any]:
    """A new dict: the OpenAPI 3.1 document of every route."""
    from lukhas_fast import __version__

    health = _get("Health (the guide's fields); 503 when a component is unhealthy", HEALTH, 500)
    health["get"]["responses"]["503"] = _HEALTH_503
    ready = _get("Readiness: started and not shutting down", _obj({"status": {"enum": ["ready"]}}), 500)
    ready["get"]["responses"]["503"] = _READY_503
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "lukhas_fast production service", "version": __version__,
                 "description": "The integration guide's ProductionConsciousnessService contract, as a superset."},
        "paths": {
            "/health": health,
            "/livez": _get("Liveness: the process answers", _obj({"status": {"enum": ["alive"]}}), 500),
            "/readyz": ready,
            "/metrics": _get("Metrics as JSON (the guide's keys and ours)", METRICS, 500),
            "/metrics/prometheus": {"get": {
                "summary": "Prometheus text exposition",
                "parameters": [_REQUEST_ID],
                "responses": dict({"200": {"description": "OK", "content": {"text/plain": {"schema": _STR}}}},
                                  **_errors(500, 501))}},
            "/openapi.json": _get("This document", _OBJ, 500),
            "/consciousness/analyze": _post("Submit a frame, or analyse the live consciousness state",
                                            CONSCIOUSNESS_REQUEST, CONSCIOUSNESS_RESPONSE),
            "/safety/enrich": _post("Safety tags of a plan (the guide's tagged_plan and ours)", SAFETY_REQUEST,
                                    SAFETY_RESPONSE),
            "/drift/analyze": _post("One drift update (the monitor's result)", DRIFT_REQUEST, DRIFT_RESPONSE),
            "/ethics/evaluate": _post("Ethics decision for a plan", ETHICS_REQUEST, ETHICS_RESPONSE),
        },
        "components": {"schemas": {"Error": ERROR}},
    }
    return copy.deepcopy(doc)
