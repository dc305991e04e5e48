"""Build the test suite's tiny bundles ahead of time, for a test run in an install without torch.

    python tests/make_test_bundle.py DIR     # needs the train and export extras

Writes DIR/bundle and DIR/casing-bundle, the same bundles the `tiny_bundle` and `casing_bundle`
fixtures build (tests/conftest.py). With NER_EXPORT_TEST_BUNDLES=DIR the fixtures use these instead
of exporting, so the runtime tests can run where only `ner-export[cpu,test]` is installed; CI does
that to prove the runtime needs no torch.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from conftest import TRAIN_CONLL, export_tiny_bundle, make_casing_checkpoint, make_tiny_checkpoint


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ner-export-test-bundles-") as tmp:
        work = Path(tmp)
        conll = work / "small.conll"
        conll.write_text(TRAIN_CONLL, encoding="utf-8")
        checkpoint = make_tiny_checkpoint(work / "checkpoint")
        export_tiny_bundle(checkpoint, conll, out / "bundle")
        casing = make_casing_checkpoint(checkpoint, work / "casing-checkpoint")
        export_tiny_bundle(casing, conll, out / "casing-bundle")
    print(f"test bundles written to {out}/bundle and {out}/casing-bundle")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(Path(sys.argv[1]))
