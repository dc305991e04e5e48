"""`ner-export serve BUNDLE`: the bundle over HTTP until SIGTERM/SIGINT, in this process or on Ray Serve.

The options' defaults are `ServeSettings`' (a test checks them against each other). Which engine takes
which option is `serve.launch`'s business; it is imported inside the command with fastapi and the
serving stack (ray only for `--engine ray`), so no other command needs them. The engine and log-level
choices come from `serve.settings`, which imports neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ner_export.serve.settings import ENGINES, LOG_LEVELS

from ._util import (
    address_option,
    aggregation_option,
    backend_option,
    cli,
    config_from_options,
    decoding_option,
    device_option,
    engine_option,
    precision_option,
    reports_user_errors,
    threads_option,
    word_split_option,
)


def parse_json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    """An option holding a JSON object, parsed; anything else is a bad parameter."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param=param) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("expected a JSON object", param=param)
    return parsed


@cli.command("serve")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface)."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port (the log names it).",
)
@device_option
@precision_option("Graph to run [default: int8 on cpu].")
@backend_option
@threads_option("Intra-op threads of each worker process [default: the CPUs this process may use / --workers].")
@click.option(
    "--spin/--no-spin",
    default=False,
    show_default=True,
    help="Let onnxruntime threads keep spinning between model calls (by default they spin only inside one): "
    "lower latency alone, but they take CPU from the event loop under load.",
)
@aggregation_option("When a request names no aggregation_strategy.")
@decoding_option("Most probable valid IOB2 sequence, or each word's best label (the pipeline's way).")
@word_split_option()
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Processes serving the port, each with its own model and --threads (default: CPUs / workers).",
)
@click.option(
    "--streams",
    type=click.IntRange(1),
    help="Batches each process runs at once, each on --threads / streams threads [default: one per thread].",
)
@click.option(
    "--max-batch-size", default=32, show_default=True, type=click.IntRange(1), help="Texts in one model call."
)
@click.option(
    "--max-batch-tokens",
    default=16384,
    show_default=True,
    type=click.IntRange(1),
    help="Padded tokens in one model call.",
)
@click.option(
    "--max-wait-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How long a free model waits for more texts.",
)
@click.option(
    "--allow-batch-dependent", is_flag=True, help="Batch across requests even on a graph that is not batch-invariant."
)
@click.option(
    "--payload-limit",
    default=2_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body, in bytes (413 beyond).",
)
@click.option(
    "--max-client-batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Most texts in one request (413 beyond).",
)
@click.option(
    "--max-queued-texts",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Most texts waiting for the model (429 beyond).",
)
@click.option(
    "--max-queue-ms",
    default=75.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Longest estimated wait for the model a new request may face (429 beyond; 0: no time bound).",
)
@click.option(
    "--request-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds from acceptance to answer (504 beyond).",
)
@click.option(
    "--graceful-timeout",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds in-flight requests get to finish after SIGTERM/SIGINT.",
)
@click.option(
    "--shutdown-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds /ready stays 503 after SIGTERM before the listener closes.",
)
@click.option(
    "--crash-loop-deaths",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="With --workers: this many worker deaths within --crash-loop-window end the service (exit 1).",
)
@click.option(
    "--crash-loop-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds over which --crash-loop-deaths are counted; a dead worker is otherwise replaced.",
)
@click.option(
    "--heartbeat-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="With --workers: seconds a worker may go silent (hung) before it is killed and replaced.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One log line per request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS),
    help="Least severe log messages shown.",
)
@engine_option(ENGINES, "local: this process (uvicorn); ray: a Ray Serve application (ner-export[ray]).")
@address_option("ray: join this Ray cluster (auto, ray://host:port) [default: start a local Ray on 127.0.0.1].")
@click.option("--num-replicas", type=click.IntRange(1), help="ray: replicas of the model [default: 1].")
@click.option(
    "--autoscaling-config",
    callback=parse_json_object,
    help='ray: Ray Serve autoscaling as JSON, e.g. \'{"min_replicas": 1, "max_replicas": 4}\'.',
)
@click.option(
    "--num-cpus", type=click.FloatRange(0), help="ray: CPUs reserved per replica [default: --threads, else 1]."
)
@click.option(
    "--max-ongoing-requests",
    type=click.IntRange(1),
    help="ray: requests one replica takes at once [default: max-queued-texts + max-batch-size].",
)
@reports_user_errors
def serve_command(bundle: Path, engine: str, address: str | None, **options: Any) -> None:
    """Serve BUNDLE over HTTP (Hugging Face token-classification protocol) until SIGTERM/SIGINT."""
    from ner_export.serve.launch import ServeLaunch, launch

    launch(config_from_options(ServeLaunch, bundle=str(bundle), engine=engine, address=address, options=options))
