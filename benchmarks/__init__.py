"""ner_export.benchmarks: the demo and `ner-export bench` (may use every other package)."""
