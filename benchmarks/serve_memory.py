"""`python -m ner_export.benchmarks.serve_memory BUNDLE`: a server's memory after warm-up and under the soak's
texts, by onnxruntime arena setting and warm-up, each in a fresh process, in one run.

What it answers: why a long-lived process's RSS grows after its warm-up, and what stops it. Each
configuration loads the bundle with `ner-export serve`'s model options (changing only the arena
settings), warms up, then runs `--requests` of the soak's inputs (`serve_load_soak.soak_inputs`: 1 to
20,000 characters, every 500th a list of 32 texts) through `predict(..., stream=True)` from as many
threads as the model has streams, as the server's batch workers call it. RSS is read after loading,
after the warm-up, every `--step` requests and at the end.

Design trade-offs:
- No HTTP: the server's own buffers are small next to the model's arenas, and without the event loop
  a configuration takes a minute, not a soak's quarter hour; the soak itself checks the whole server.
- A process per configuration, one after the other: onnxruntime's shared arena is registered on the
  process-wide environment and an arena never gives memory back, so configurations cannot share one.
- Bounded by the request count and `--max-seconds` per configuration (a configuration past it is
  stopped and reported as such).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["CONFIGURATIONS", "measure_configuration", "main"]

# name -> (onnxruntime SessionOptions attributes, shared arena, warm-up)
CONFIGURATIONS: dict[str, tuple[dict[str, bool], bool, str]] = {
    "per-session arenas, texts warm-up": ({}, False, "texts"),
    "per-session arenas, largest-batch warm-up": ({}, False, "largest"),
    "shared arena, largest-batch warm-up (serve)": ({}, True, "largest"),
    "shared arena, memory pattern off, largest-batch warm-up": ({"enable_mem_pattern": False}, True, "largest"),
    "arena off, largest-batch warm-up": ({"enable_cpu_mem_arena": False}, False, "largest"),
    "arena and memory pattern off, largest-batch warm-up": (
        {"enable_cpu_mem_arena": False, "enable_mem_pattern": False},
        False,
        "largest",
    ),
}


def _rss_mb() -> float:
    from .serve_load_soak import process_tree_resources

    return process_tree_resources(os.getpid())["rss_bytes"] / 1e6


def measure_configuration(bundle: Path, name: str, requests: int, step: int, seed: int) -> dict[str, Any]:
    """RSS (MB) after load, after warm-up and every `step` requests, and the seconds the requests took,
    for configuration `name` of `CONFIGURATIONS`, in this process."""
    import ner_export.runtime.loading as loading
    from ner_export.runtime import NerModel
    from ner_export.runtime.session import create_session
    from ner_export.serve import ServeSettings
    from ner_export.serve.model_loading import WARMUP_TEXTS, warm_up

    from .serve_load_soak import soak_inputs

    session_options, shared, warm = CONFIGURATIONS[name]
    # the arena settings are SessionOptions attributes, which NerModel.load does not take: set them on
    # every session the loader builds, as a user's own create_session would
    loading.create_session = lambda *args, **kwargs: create_session(*args, options=session_options, **kwargs)  # type: ignore[assignment]
    settings = ServeSettings()
    options = {**settings.model_options(), "shared_arena": shared}
    model = NerModel.load(bundle, **options)
    loaded = _rss_mb()
    if warm == "largest":
        warm_up(model, settings.max_batch_size)
    else:
        for _ in range(2):
            model.predict(list(WARMUP_TEXTS), batch_size=settings.max_batch_size)
    warmed = _rss_mb()
    inputs = [item if isinstance(item, list) else [item] for item in soak_inputs(requests, seed)]
    curve: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(model.streams) as pool:
        calls = pool.map(lambda texts: model.predict(texts, settings.max_batch_size, stream=True), inputs)
        for done, _ in enumerate(calls, start=1):
            if done % step == 0:
                curve.append(round(_rss_mb(), 1))
    return {
        "configuration": name,
        "rss_mb": {"loaded": round(loaded, 1), "warmed_up": round(warmed, 1), "end": round(_rss_mb(), 1)},
        "rss_mb_by_requests": curve,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in CONFIGURATIONS:
        command = [sys.executable, "-m", "ner_export.benchmarks.serve_memory", str(args.bundle), "--one", name]
        command += ["--requests", str(args.requests), "--step", str(args.step), "--seed", str(args.seed)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.max_seconds, check=False)
        except subprocess.TimeoutExpired:
            rows.append({"configuration": name, "error": f"stopped after {args.max_seconds} s"})
            continue
        if done.returncode != 0:
            rows.append({"configuration": name, "error": done.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['rss_mb']}, {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict[str, Any]], requests: int, step: int) -> str:
    """A Markdown table of `_run_all`'s rows: RSS after warm-up, after the first reading and at the end,
    the growth from each to the end, the seconds. The first requests grow the Python and tokenizer heaps
    to the longest text's needs whatever the arena does; growth after them is what keeps going."""
    lines = [
        f"| configuration | RSS loaded MB | after warm-up | after {step:,} requests | after {requests:,} | "
        f"end / warm-up | end / after {step:,} | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['configuration']} | {row['error']} | | | | | | |")
            continue
        rss, first = row["rss_mb"], row["rss_mb_by_requests"][0]
        lines.append(
            f"| {row['configuration']} | {rss['loaded']:.0f} | {rss['warmed_up']:.0f} | {first:.0f} | "
            f"{rss['end']:.0f} | {rss['end'] / rss['warmed_up']:.3f} | {rss['end'] / first:.3f} | "
            f"{row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--requests", type=int, default=1000, help="soak inputs per configuration")
    parser.add_argument("--step", type=int, default=200, help="read RSS after every this many requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=600, help="most seconds per configuration")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--one", choices=list(CONFIGURATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_configuration(args.bundle, args.one, args.requests, args.step, args.seed)))
        return 0
    rows = _run_all(args)
    if args.out:
        args.out.write_text(json.dumps({"requests": args.requests, "step": args.step, "rows": rows}, indent=2) + "\n")
    print(report(rows, args.requests, args.step), end="")
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
