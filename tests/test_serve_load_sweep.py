"""The sweep's refinement: target rates inside the gap are measured at their own rate before bisecting."""

from __future__ import annotations

from typing import Any

from ner_export.benchmarks.serve_load_sweep import _refine, best_rate


class _FakeServer:
    """A 'measure' whose p99 rises with the offered rate: it meets 50 ms up to `capacity` req/s."""

    def __init__(self, capacity: float) -> None:
        self.capacity = capacity
        self.offered: list[tuple[float, str]] = []

    def __call__(self, rate: float, kind: str = "sweep") -> dict[str, Any]:
        self.offered.append((rate, kind))
        p99 = 30.0 if rate <= self.capacity else 80.0
        return {
            "offered_rps": rate,
            "achieved_rps": rate,
            "latency_ms": {"p99": p99},
            "status_429": 0,
            "status_5xx": 0,
            "transport_errors": 0,
            "unfinished": 0,
        }


def _sweep(server: _FakeServer, rates: list[float], refine: int, targets: tuple[float, ...]) -> list[dict[str, Any]]:
    steps = [server(rate) for rate in rates]
    _refine(steps, server, refine, 50.0, targets)  # type: ignore[arg-type]
    return steps


def test_target_rate_inside_the_gap_is_measured_first() -> None:
    server = _FakeServer(capacity=580)
    steps = _sweep(server, [100, 300, 600, 900], refine=2, targets=(450, 540, 1000))
    assert server.offered[4:] == [(450, "target rate"), (540, "target rate"), (570, "refine"), (585, "refine")]
    assert best_rate(steps, 50.0) == 570


def test_a_target_rate_that_misses_bounds_the_bisection_below_it() -> None:
    server = _FakeServer(capacity=400)
    steps = _sweep(server, [100, 300, 600], refine=1, targets=(450,))
    assert server.offered[3:] == [(450, "target rate"), (375, "refine")]
    assert best_rate(steps, 50.0) == 375


def test_bisection_alone_cannot_reach_a_target_between_its_points() -> None:
    """Why target rates are measured: two bisections of 300..600 try 450 and 525, never 540."""
    server = _FakeServer(capacity=560)
    steps = _sweep(server, [100, 300, 600], refine=2, targets=())
    assert best_rate(steps, 50.0) == 525
    with_target = _sweep(_FakeServer(capacity=560), [100, 300, 600], refine=2, targets=(540,))
    assert best_rate(with_target, 50.0) == 555


def test_no_rate_meeting_the_limit_measures_nothing_more() -> None:
    server = _FakeServer(capacity=50)
    _sweep(server, [100, 300], refine=2, targets=(200,))
    assert [kind for _, kind in server.offered] == ["sweep", "sweep"]
