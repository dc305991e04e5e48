"""Cold start: a system's minimal script run in a fresh process, timed to its first prediction.

Import and load cost is what a restarted service pays, so it is measured in a new interpreter, not in
the bench's warm one: seconds from process start to the first prediction, the peak resident memory and
whether torch was imported. `session_int8`'s script is the bare-library version on purpose, so it
imports neither ner-export nor anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ner_export.runtime.errors import ColdStartError

__all__ = ["COLD_STARTS", "cold_start"]

COLD_STARTS = {
    "pytorch": (
        "from ner_export.finetune import ner_pipeline\n"
        "p = ner_pipeline({checkpoint!r}, aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "optimum_int8": (
        "from optimum.onnxruntime import ORTModelForTokenClassification\n"
        "from transformers import AutoTokenizer\n"
        "from ner_export.finetune import load_config, ner_pipeline\n"
        "m = ORTModelForTokenClassification.from_pretrained("
        "{bundle!r}, config=load_config({bundle!r}), file_name='model_int8.onnx', local_files_only=True)\n"
        "p = ner_pipeline(m, AutoTokenizer.from_pretrained({checkpoint!r}),"
        " aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "runtime_fp32": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r}, precision='fp32')({text!r})\n",
    "runtime_int8": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r})({text!r})\n",
    "runtime_int8_openvino": (
        "from ner_export.runtime import NerModel\nNerModel.load({bundle!r}, backend='openvino')({text!r})\n"
    ),
    "session_int8": (
        "import numpy as np, onnxruntime as ort\n"
        "from tokenizers import Tokenizer\n"
        "t = Tokenizer.from_file({bundle!r} + '/tokenizer.json')\n"
        "s = ort.InferenceSession({bundle!r} + '/model_int8.onnx', providers=['CPUExecutionProvider'])\n"
        "ids = np.asarray([t.encode({text!r}).ids], dtype=np.int64)\n"
        "s.run(None, {{'input_ids': ids, 'attention_mask': np.ones_like(ids), 'token_type_ids': np.zeros_like(ids)}})\n"
    ),
}
"""The script each system runs in a fresh process: imports, load, and one prediction. Systems without one
(the dynamic variant built in a temporary folder, the peers, whose start includes NNCF quantization or
a conversion) report no cold start."""

# VmHWM, not getrusage: Linux carries ru_maxrss over from the forking parent across exec.
_PEAK_MEMORY_REPORT = (
    "import sys, json\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "print(json.dumps({{'peak_rss_mb': int(hwm.split()[1]) / 1024, 'imports_torch': 'torch' in sys.modules}}))\n"
)


def cold_start(system: str, bundle: Path, checkpoint: Path, text: str) -> dict[str, Any]:
    """Seconds from process start to the first prediction, peak RSS (MB) and whether torch was imported."""
    code = COLD_STARTS[system].format(bundle=str(bundle), checkpoint=str(checkpoint), text=text)
    code += _PEAK_MEMORY_REPORT.format()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
        raise ColdStartError(f"cold start of {system} failed: {why}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return {"cold_start_s": seconds, **info}
