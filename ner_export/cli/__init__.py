"""The `ner-export` command line: parse, call one library function, print.

One module per command, like spaCy's `spacy/cli/`; `_util` holds what they share (the click group,
the user-error wrapper, the options several commands take). Importing a command module registers its
command on `cli`. Heavy stages (torch, transformers, optimum, fastapi, ray) are imported inside the
commands that need them, so `ner-export predict` starts as fast as the runtime.
"""

from __future__ import annotations

from . import (  # noqa: F401 (registers the commands)
    annotate,
    bench,
    convert,
    demo,
    distill,
    evaluate,
    export,
    finetune,
    predict,
    serve,
)
from ._util import cli, main

__all__ = ["cli", "main"]
