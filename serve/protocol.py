"""The wire format: Hugging Face's token-classification protocol, parsed by hand.

Requests are `{"inputs": str | [str], "parameters": {"aggregation_strategy": ..., "ignore_labels": [...]}}`
and answers are, per text, a list of `{"entity_group", "score", "word", "start", "end"}` (a string input
gets one list, a list input a list of lists, in order), so Hugging Face's `InferenceClient` and
anything written for Inference Endpoints work unchanged. `word` is the text's own slice
(`text[start:end]`), not the tokenizer's lowercased pieces.

Both servers answer from here: `ner-export serve` (`app`) and the Ray Serve application (`ray_app`)
parse with `parse_predict`, answer with `entities_json`, refuse with `request_errors`, and describe
themselves with `info_body`, so the two cannot drift apart.

Parsing is done here, not by pydantic: every error must be one `{"error", "error_type"}` object naming
the field and index (`inputs[3]`), which pydantic's error lists for a `str | list[str]` union do not give,
and the stdlib JSON parser keeps a lone surrogate (`"\\ud800"`) as text we can then reject by position.
`openapi` describes the same format for the OpenAPI schema.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ner_export.runtime import Entity, available_cpus
from ner_export.runtime.decoding import STRATEGIES
from ner_export.runtime.manifest import BundleManifest, GraphSpec
from ner_export.runtime.texts import json_type, lone_surrogate

from .request_errors import RequestError, invalid
from .settings import ServeSettings

__all__ = ["PredictCall", "parse_predict", "entities_json", "info_body", "versions"]

PARAMETERS = ("aggregation_strategy", "ignore_labels", "stride")
# json.dumps(x, ensure_ascii=False) builds a new encoder per call; this one is made once and writes the same bytes
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)
TOP_LEVEL = ("inputs", "parameters", "options")


@dataclass(frozen=True)
class PredictCall:
    """A parsed prediction request."""

    texts: list[str]
    single: bool  # `inputs` was one string: answer with one list, not a list of lists
    aggregation: str
    ignore_labels: frozenset[str]


def _checked_text(text: Any, field: str) -> str:
    """`text` when it is a string of encodable characters, else the 422 naming `field`."""
    if not isinstance(text, str):
        raise invalid(f"{field}: expected a string, got {json_type(text)}")
    at = lone_surrogate(text)
    if at is not None:
        raise invalid(
            f"{field}: invalid text: {text[at]!r} at character {at} is a lone surrogate, not a character "
            "(it cannot be encoded as UTF-8)"
        )
    return text


def parse_predict(body: bytes, settings: ServeSettings) -> PredictCall:
    """Parse and check a request body; raise RequestError (413 or 422) naming the problem."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise invalid("body: not valid UTF-8") from None
    except ValueError as exc:
        raise invalid(f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise invalid(f'body: expected a JSON object with "inputs", got {json_type(data)}')
    for key in data:
        if key not in TOP_LEVEL:
            raise invalid(f"{key}: unknown field (expected inputs, parameters and optionally options)")
    if "inputs" not in data:
        raise invalid('inputs: missing (send {"inputs": "some text"} or {"inputs": ["text", ...]})')
    inputs = data["inputs"]
    if isinstance(inputs, list):
        if len(inputs) > settings.max_client_batch_size:
            raise RequestError(
                413,
                f"inputs: {len(inputs)} texts exceed the limit of {settings.max_client_batch_size} per request "
                "(--max-client-batch-size)",
                "payload_too_large",
                "too_many_texts",
            )
        texts = [_checked_text(text, f"inputs[{i}]") for i, text in enumerate(inputs)]
        single = False
    elif isinstance(inputs, str):
        texts, single = [_checked_text(inputs, "inputs")], True
    else:
        raise invalid(f"inputs: expected a string or an array of strings, got {json_type(inputs)}")
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise invalid(f"parameters: expected an object, got {json_type(parameters)}")
    for key in parameters:
        if key not in PARAMETERS:
            raise invalid(f"parameters.{key}: unknown parameter (supported: aggregation_strategy, ignore_labels)")
    aggregation = parameters.get("aggregation_strategy")
    if aggregation is None:
        aggregation = settings.aggregation
    elif aggregation not in STRATEGIES:
        raise invalid(f"parameters.aggregation_strategy: {aggregation!r} is not one of {', '.join(STRATEGIES)}")
    ignore = parameters.get("ignore_labels")
    if ignore is None:
        ignore = []
    if not isinstance(ignore, list):
        raise invalid(f"parameters.ignore_labels: expected an array of strings, got {json_type(ignore)}")
    for i, label in enumerate(ignore):
        if not isinstance(label, str):
            raise invalid(f"parameters.ignore_labels[{i}]: expected a string, got {json_type(label)}")
    if parameters.get("stride") is not None:
        raise invalid("parameters.stride: not supported; long texts are read in windows with the bundle's own stride")
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise invalid(f"options: expected an object, got {json_type(options)}")
    return PredictCall(texts, single, aggregation, frozenset(ignore))


def entities_json(call: PredictCall, results: list[list[Entity]]) -> bytes:
    """The answer body: per text, its entities in the Hugging Face format."""
    rows = [
        [
            {"entity_group": e.label, "score": e.score, "word": e.text, "start": e.start, "end": e.end}
            for e in entities
            if e.label not in call.ignore_labels
        ]
        for entities in results
    ]
    return JSON_ENCODER.encode(rows[0] if call.single else rows).encode("utf-8")


def info_body(
    *,
    status: str,
    bundle_dir: Path,
    manifest: BundleManifest,
    graph: GraphSpec,
    bundle_sha256: str,
    settings: ServeSettings,
    cross_request: bool,
    threads: int | None,
    stride: int | None,
    extra_versions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The body of `GET /info`: the bundle, the graph, the batching decision, limits and versions."""
    return {
        "status": status,
        "model": {
            "bundle": str(bundle_dir),
            "bundle_sha256": bundle_sha256,
            "labels": list(manifest.labels),
            "entity_types": sorted({label.split("-", 1)[-1] for label in manifest.labels if label != "O"}),
            "max_length": manifest.max_length,
            "model_type": manifest.model_type,
            "context": manifest.context,
            "casing": manifest.casing,
            "opset": manifest.opset,
            "format_version": manifest.format_version,
            "graphs": [
                {
                    "file": spec.file,
                    "device": spec.device,
                    "precision": spec.precision,
                    "backend": spec.backend,
                    "batch_invariant": spec.batch_invariant,
                }
                for spec in manifest.graphs
            ],
            "validation": {k: v for k, v in manifest.validation.items() if not isinstance(v, (list, dict))},
        },
        "graph": {
            "file": graph.file,
            "device": graph.device,
            "precision": graph.precision,
            "backend": graph.backend,
            "quantization": graph.quantization,
        },
        "batch_invariant": graph.batch_invariant,
        "batching": {
            "cross_request": cross_request,
            "max_batch_size": settings.max_batch_size,
            "max_batch_tokens": settings.max_batch_tokens,
            "max_wait_ms": settings.max_wait_ms,
            "allow_batch_dependent": settings.allow_batch_dependent,
        },
        "limits": {
            "payload_limit": settings.payload_limit,
            "max_client_batch_size": settings.max_client_batch_size,
            "max_queued_texts": settings.max_queued_texts,
            "max_queue_ms": settings.max_queue_ms,
            "request_timeout": settings.request_timeout,
        },
        "runtime": {
            "pid": os.getpid(),  # with several workers: the one that answered
            "workers": settings.workers,
            "device": settings.device,
            "threads": threads or available_cpus(),
            "aggregation": settings.aggregation,
            "decoding": settings.decoding,
            "word_split": settings.word_split,
            "stride": stride,
        },
        "settings": settings.to_dict(),
        "versions": versions(*extra_versions),
    }


def versions(*extra: str) -> dict[str, str]:
    """Python's and the installed serving packages' versions (those not installed are left out)."""
    found = {"python": platform.python_version()}
    for dist in (
        "ner-export",
        "onnxruntime",
        "onnxruntime-gpu",
        "tokenizers",
        "numpy",
        "fastapi",
        "starlette",
        "uvicorn",
        "prometheus-client",
        *extra,
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found
