"""`Int8Attempt`: the record of one int8 rung the accuracy gate measured.

A leaf of the package: the gate (`export.gate`) makes these records and the validator
(`export.validate`) writes them into the manifest's `validation` entry, so the type lives apart from
both and neither imports the other for it. It holds plain values (the rung's config as a dict, not the
`Int8Config`), exactly what the manifest stores, so a record reads back from `bundle.json` unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Int8Attempt"]


@dataclass(frozen=True)
class Int8Attempt:
    """One rung of the int8 ladder as measured: its config, the F1s, the drop and the verdict."""

    config: dict[str, Any]
    fp32_f1: float | None
    int8_f1: float | None
    drop: float | None  # points of entity F1 lost (100 * (fp32_f1 - int8_f1)); None when unmeasured
    word_agreement: float  # share of words on which int8 and fp32 agree
    accepted: bool

    @property
    def name(self) -> str:
        """The rung's name (`Int8Config.name`)."""
        return str(self.config.get("name", "?"))

    def to_dict(self) -> dict[str, Any]:
        """The record as the manifest's `validation["int8_attempts"]` holds it."""
        return asdict(self)
