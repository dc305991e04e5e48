"""`openapi_schema(settings, ...)`: the OpenAPI document of `ner-export serve`, written out by hand.

The schema states exactly what the server accepts and answers, so a client generator or a schema
fuzzer (the tests run schemathesis against a live server) can hold the server to it: the request
body with `additionalProperties: false` at the top level and in `parameters` (the parser refuses an
unknown field with 422 naming it, rather than ignoring what may be a typo; `options`, which the
Inference API defines and this server ignores, takes any object), `inputs` bounded by this server's
`max_client_batch_size` (413 beyond), every status each path answers with its body and headers, and
`/metrics` as the Prometheus text format `text/plain; version=0.0.4`.

By hand rather than from pydantic models through FastAPI: the prediction routes parse their bodies
themselves (`protocol.parse_predict`), so models would only describe them, and a second description
drifts; here the one description is a plain dict next to the parser's rules, and it takes the
server's limits as they are set.
"""

from __future__ import annotations

from typing import Any

from ner_export.runtime.decoding import STRATEGIES

from .settings import ServeSettings

__all__ = ["openapi_schema", "PREDICT_PATHS"]

PREDICT_PATHS = ("/", "/predict")
_REF = "#/components/schemas/"


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json({"$ref": _REF + "Error"}, description, headers)


def _header(description: str, required: bool, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": kind}}


REQUEST_ID = _header("The client's X-Request-ID when sane (1-128 URL-safe characters), else one made here", True)


def _components(settings: ServeSettings) -> dict[str, Any]:
    """The request, entity and error bodies."""
    text = {"type": "string", "description": "A text (any length; long texts are read in windows)"}
    return {
        "PredictRequest": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "inputs": {
                    "description": f"One text, or a list of at most {settings.max_client_batch_size} texts "
                    "(--max-client-batch-size; 413 beyond)",
                    "anyOf": [text, {"type": "array", "items": text, "maxItems": settings.max_client_batch_size}],
                },
                "parameters": {"anyOf": [{"$ref": _REF + "Parameters"}, {"type": "null"}]},
                "options": {
                    "description": "Accepted for compatibility with the Inference API, and ignored",
                    "anyOf": [{"type": "object"}, {"type": "null"}],
                },
            },
        },
        "Parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "aggregation_strategy": {
                    "description": "How tokens are grouped into words and entities (as in transformers' pipeline); "
                    f"default: the server's --aggregation ({settings.aggregation})",
                    "anyOf": [{"type": "string", "enum": list(STRATEGIES)}, {"type": "null"}],
                },
                "ignore_labels": {
                    "description": "Entity groups to leave out of the answer",
                    "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                },
                "stride": {
                    "description": "Not supported (422 unless null): long texts are read in windows with the "
                    "bundle's own stride",
                    "type": "null",
                },
            },
        },
        "Entity": {
            "type": "object",
            "required": ["entity_group", "score", "word", "start", "end"],
            "additionalProperties": False,
            "properties": {
                "entity_group": {"type": "string", "description": "Entity type, e.g. PER"},
                "score": {"type": "number", "description": "Mean probability of the entity's words' labels"},
                "word": {"type": "string", "description": "The entity's text, text[start:end]"},
                "start": {"type": "integer", "minimum": 0, "description": "Start offset in the text (code points)"},
                "end": {"type": "integer", "minimum": 0, "description": "End offset (exclusive)"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "error_type"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "description": "What was wrong, naming the field or the limit"},
                "error_type": {
                    "type": "string",
                    "enum": ["validation", "payload_too_large", "overloaded", "unavailable", "timeout", "internal"],
                },
            },
        },
    }


def _predict_operation(path: str) -> dict[str, Any]:
    entities = {"type": "array", "items": {"$ref": _REF + "Entity"}}
    retry_after = _header("Seconds to wait before retrying", True, "integer")
    return {
        "summary": "Entities of one text, or of each text of a list",
        "operationId": "predict" if path == "/predict" else "predict_root",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + "PredictRequest"}}},
        },
        "responses": {
            "200": _json(
                {"anyOf": [entities, {"type": "array", "items": entities}]},
                "Per text its entities: one list for a string input, a list of lists (in order) for a list",
                {"X-Request-ID": REQUEST_ID},
            ),
            "413": _error("The body exceeds --payload-limit, or inputs holds more than --max-client-batch-size texts"),
            "422": _error("Not the protocol: an unknown or mistyped field, bad JSON or UTF-8, a lone surrogate"),
            "429": _error("The queue is full or too slow to take the request now", {"Retry-After": retry_after}),
            "500": _error("The model failed on the request"),
            "503": _error(
                "The model is loading, the server is draining, or it stopped before answering",
                {"Retry-After": _header("Seconds to wait before retrying (loading or draining)", False, "integer")},
            ),
            "504": _error("No answer within --request-timeout"),
        },
    }


def _status_operations() -> dict[str, Any]:
    status = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    return {
        "/health": {
            "get": {
                "summary": "Liveness: 200 while the process can serve (503 if the model failed to load)",
                "operationId": "health",
                "responses": {
                    "200": _json(status, "The process can serve"),
                    "503": _json(status, "The model failed to load or the batcher stopped; `error` says why"),
                },
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness: 200 once the model is loaded and warmed; 503 before, and while draining",
                "operationId": "ready",
                "responses": {
                    "200": _json(status, "ready"),
                    "503": _json(status, "loading, draining or failed"),
                },
            }
        },
        "/info": {
            "get": {
                "summary": "Labels, bundle sha256, manifest summary, quantization, batch_invariant, batching "
                "settings, versions",
                "operationId": "info",
                "responses": {"200": _json({"type": "object"}, "The bundle, the graph, the settings and versions")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (summed over the workers)",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def openapi_schema(settings: ServeSettings, *, title: str, version: str, description: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of a server with these settings."""
    paths = {path: {"post": _predict_operation(path)} for path in PREDICT_PATHS}
    paths.update(_status_operations())
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": _components(settings)},
    }
