"""ner_export.benchmarks: `ner-export bench` and the comparison scripts (may use every other package).

`bench` runs a benchmark; `systems` names the stacks it compares and loads them (`system_interface`
their one interface, `text_systems` the raw-text ones, `bare_systems` those fed pre-tokenized batches,
`cold_start` their start in a fresh process); `timing` is how they are timed, `report` the goals,
Markdown and chart, `peers` the other CPU engines; `int8_schemes`,
`runtime_options`, `compare_int8`, `recipe_sweep`, `serve_load`, `annotate_bench` and `casing_paths` are
scripts (`python -m ner_export.benchmarks.NAME`) for questions the bench does not answer. Importing this
package loads no torch, transformers or matplotlib: each loads when a measurement needs it.
"""

from .bench import (
    BenchConfig,
    BenchResult,
    batch_invariance,
    entities_to_word_tags,
    group_documents,
    run_bench,
    split_documents,
)
from .report import TARGETS, Target, render_markdown
from .systems import SYSTEMS
from .timing import block_latencies, measure_speed, percentiles

__all__ = [
    "BenchConfig",
    "BenchResult",
    "SYSTEMS",
    "TARGETS",
    "Target",
    "batch_invariance",
    "block_latencies",
    "entities_to_word_tags",
    "group_documents",
    "measure_speed",
    "percentiles",
    "render_markdown",
    "run_bench",
    "split_documents",
]
