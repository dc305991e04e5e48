"""Block-interleaved latency: turns, rotation, and the untimed warm-up at the start of each block."""

from __future__ import annotations

import time

from ner_export.benchmarks.timing import block_latencies


def _recording(calls: list[tuple[str, int]], name: str, pause: float = 0.0):
    def run(i: int) -> None:
        calls.append((name, i))
        if pause:
            time.sleep(pause)

    return run


def test_blocks_rotate_and_start_with_three_untimed_calls_without_a_warmup_time() -> None:
    calls: list[tuple[str, int]] = []
    runners = {name: _recording(calls, name) for name in ("a", "b")}
    seconds = block_latencies(runners, n=8, block=4, warmup_s=0.0)
    assert {name: len(s) for name, s in seconds.items()} == {"a": 8, "b": 8}
    untimed, timed = [0, 1, 2], [0, 1, 2, 3]
    first = [("a", i) for i in untimed + timed] + [("b", i) for i in untimed + timed]
    second = [("b", i + 4) for i in untimed + timed] + [("a", i + 4) for i in untimed + timed]
    assert calls == first + second


def test_each_block_warms_up_for_at_least_the_warmup_time_on_its_own_items() -> None:
    calls: list[tuple[str, int]] = []
    runners = {name: _recording(calls, name, pause=0.002) for name in ("a", "b")}
    started = time.perf_counter()
    seconds = block_latencies(runners, n=6, block=3, warmup_s=0.05)
    assert time.perf_counter() - started >= 4 * 0.05  # two blocks, two runners, each warmed >= 0.05 s
    assert {name: len(s) for name, s in seconds.items()} == {"a": 6, "b": 6}
    a_calls = [i for name, i in calls if name == "a"]
    assert len(a_calls) > 2 * (3 + 3)  # more than the three untimed calls per block
    first_block = a_calls[: a_calls.index(3)]  # before the second block starts, only its own items
    assert set(first_block) == {0, 1, 2}


def test_a_reset_runs_between_the_warm_up_and_the_timed_calls_of_each_block() -> None:
    calls: list[tuple[str, int]] = []
    runners = {name: _recording(calls, name) for name in ("a", "b")}
    resets = {"a": lambda: calls.append(("reset a", -1))}
    block_latencies(runners, n=4, block=2, warmup_s=0.0, resets=resets)
    a_block = [("a", 0), ("a", 1), ("a", 0), ("reset a", -1), ("a", 0), ("a", 1)]
    b_block = [("b", 0), ("b", 1), ("b", 0), ("b", 0), ("b", 1)]
    second = [("b", 2), ("b", 3), ("b", 2), ("b", 2), ("b", 3)]
    second += [("a", 2), ("a", 3), ("a", 2), ("reset a", -1), ("a", 2), ("a", 3)]
    assert calls == a_block + b_block + second
