"""The serve batcher alone, on recording models: which texts a batch takes, when a text waits for the
next batch, the wait bound from the measured speed, and streams side by side.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")


class _RecordingModel:
    """Stands in for NerModel: records each predict call; a text "bad" makes the call fail."""

    streams = 1

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:  # a rule of its own: the batcher must ask the model
        return 2 * narrow > wide

    def __init__(self, batch_invariant: bool) -> None:
        self.batch_invariant = batch_invariant
        self.calls: list[tuple[list[str], str]] = []
        self.gate = threading.Event()  # holds the first call until every job is queued (and one cancelled)

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        assert self.gate.wait(5)
        self.calls.append((list(texts), aggregation))
        if "bad" in texts:
            raise ValueError("bad text")
        return [[text.upper()] for text in texts]


def _started_batcher(model: Any, settings: Any) -> Any:
    """A Batcher over the stand-in `model`, started, its model loaded."""
    from ner_export.serve.batcher import Batcher
    from ner_export.serve.metrics import Metrics

    loaded = threading.Event()
    batcher = Batcher(lambda: model, settings, Metrics(), lambda _: loaded.set(), lambda exc: None)
    batcher.start()
    assert loaded.wait(5)
    return batcher


def _batch_calls(
    batch_invariant: bool, jobs: list[tuple[list[str], list[tuple[int, int]], str]], cancel: int | None = None
) -> tuple[list, list]:
    """Queue `jobs` at once into a Batcher (max 3 texts, 100 padded tokens, 50 ms wait).

    Returns its model calls and the jobs' outcomes.
    """
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _RecordingModel(batch_invariant)
    settings = ServeSettings(max_batch_size=3, max_batch_tokens=100, max_wait_ms=50)

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)
        queued = [Job(texts, costs, aggregation, loop.create_future(), loop) for texts, costs, aggregation in jobs]
        for job in queued:
            assert batcher.submit(job) is None
        if cancel is not None:
            assert batcher.cancel(queued[cancel]) == len(queued[cancel].texts)
        model.gate.set()
        waited = [job for k, job in enumerate(queued) if k != cancel]
        outcomes = await asyncio.wait_for(asyncio.gather(*(job.future for job in waited), return_exceptions=True), 10)
        batcher.stop(5)
        return [repr(o) if isinstance(o, Exception) else o for o in outcomes]

    outcomes = asyncio.run(scenario())
    return model.calls, outcomes


def test_batcher_takes_oldest_texts_of_one_aggregation_within_the_limits() -> None:
    jobs = [
        (["a0", "a1"], [(1, 30), (1, 30)], "first"),
        (["b0"], [(1, 60)], "first"),  # with a0 and a1: 3 x 60 > 100 tokens
        (["c0"], [(1, 10)], "max"),  # another aggregation: waits for its own batch, keeps its place
        (["d0", "d1"], [(1, 10), (1, 10)], "first"),  # after b0: 3 x 60 > 100
        (["e0"], [(1, 10)], "first"),
    ]
    calls, outcomes = _batch_calls(True, jobs, cancel=4)
    assert calls == [(["a0", "a1"], "first"), (["b0"], "first"), (["c0"], "max"), (["d0", "d1"], "first")]
    assert outcomes == [[["A0"], ["A1"]], [["B0"]], [["C0"]], [["D0"], ["D1"]]], "e0 was cancelled: never computed"


def test_batcher_leaves_a_text_of_a_poorly_padding_width_for_the_next_batch() -> None:
    jobs = [
        (["a0"], [(1, 40)], "first"),
        (["b0", "b1"], [(1, 12), (1, 30)], "first"),  # b0: under half of 40, next batch; b1 pads well with a0
        (["c0"], [(0, 0)], "first"),  # a text that costs nothing (empty) joins any batch
        (["d0"], [(1, 90)], "first"),  # over twice the narrowest taken (30)
        (["e0"], [(1, 20)], "first"),
    ]
    calls, outcomes = _batch_calls(True, jobs)
    assert calls == [
        (["a0", "b1", "c0"], "first"),
        (["b0", "e0"], "first"),  # the oldest left-out text leads the next batch
        (["d0"], "first"),
    ]
    assert outcomes == [[["A0"]], [["B0"], ["B1"]], [["C0"]], [["D0"]], [["E0"]]]


def test_batcher_on_a_batch_dependent_graph_runs_each_request_alone() -> None:
    jobs = [
        (["a0", "a1"], [(1, 5)] * 2, "first"),
        (["b0"], [(1, 5)], "first"),
        (["c0", "c1", "c2", "c3"], [(1, 5)] * 4, "first"),
    ]
    calls, _ = _batch_calls(False, jobs)
    assert calls == [(["a0", "a1"], "first"), (["b0"], "first"), (["c0", "c1", "c2", "c3"], "first")]


def test_a_failing_batch_fails_only_the_request_with_the_bad_text() -> None:
    jobs = [(["x"], [(1, 5)], "first"), (["bad"], [(1, 5)], "first"), (["y"], [(1, 5)], "first")]
    calls, outcomes = _batch_calls(True, jobs)
    assert calls[0] == (["x", "bad", "y"], "first") and len(calls) == 4  # the batch, then each request alone
    assert outcomes[0] == [["X"]] and outcomes[2] == [["Y"]] and "bad text" in outcomes[1]


class _SlowModel:
    """Stands in for NerModel: 20 ms per text, held at `gate`; records the texts of each call."""

    batch_invariant = True
    streams = 1

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:
        return True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        assert self.gate.wait(5)
        time.sleep(0.02 * len(texts))
        self.calls.append(list(texts))
        return [[text] for text in texts]


def test_batcher_bounds_the_expected_wait_by_the_measured_speed() -> None:
    """`max_queue_ms`: nothing is refused for time before a batch has measured the speed, nor onto an
    empty queue, nor while the queue holds at most one batch (8 texts); past that, behind at least 160 ms
    of work (20 ms a text) and a 20 s running batch, a request is refused for time and never computed."""
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _SlowModel()
    settings = ServeSettings(max_batch_size=8, max_queued_texts=10, max_client_batch_size=8, max_queue_ms=100)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)

        def job(name: str, n: int, width: int = 10) -> Job:
            return Job([f"{name}{i}" for i in range(n)], [(1, width)] * n, "first", loop.create_future(), loop)

        async def until_taken() -> None:
            for _ in range(500):
                if batcher.queued == 0:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the batcher never took the queued texts")

        # speed unknown: only the text count bounds the queue
        running, queued, unmeasured = job("a", 1), job("b", 8), job("c", 1)
        assert batcher.submit(running) is None
        await until_taken()
        assert batcher.submit(queued) is None and batcher.submit(unmeasured) is None
        assert batcher.expected_wait() == 0.0
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(running.future, queued.future, unmeasured.future), 10)

        # measured: a long running batch; the queue still takes one batch's worth, then refuses
        model.gate.clear()
        long_running = job("d", 1, width=1000)
        assert batcher.submit(long_running) is None
        await until_taken()
        behind, rest = job("e", 1), job("h", 7)
        assert batcher.submit(behind) is None, "an empty queue always takes a request"
        assert batcher.expected_wait() > 0.1
        assert batcher.submit(rest) is None, "the queue may always hold one full batch"
        late = job("f", 1)
        assert batcher.submit(late) == "queue_wait"
        assert batcher.submit(job("g", 3)) == "queue_full", "the text count is checked first"
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(long_running.future, behind.future, rest.future), 10)
        assert batcher.stop(5) == 0
        assert not late.future.done()

    asyncio.run(scenario())
    computed = [text for call in model.calls for text in call]
    assert "f0" not in computed and sorted(computed) == sorted(
        ["a0", *(f"b{i}" for i in range(8)), "c0", "d0", "e0", *(f"h{i}" for i in range(7))]
    )


class _StreamModel:
    """Stands in for NerModel with two streams; records (texts, stream, start, end) of each call. A call on
    one stream returns only once another stream call has started too (at most 10 s): two stream calls
    that are not in the model at the same time fail with BrokenBarrierError. A call on the whole model
    returns once `whole_model_gate` is set."""

    batch_invariant = True
    streams = 2

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:
        return True

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, float, float]] = []
        self._lock = threading.Lock()
        self.side_by_side = threading.Barrier(2)
        self.whole_model_gate = threading.Event()

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        started = time.perf_counter()
        if stream:
            self.side_by_side.wait(10)
        else:
            assert self.whole_model_gate.wait(10)
        with self._lock:
            self.calls.append((list(texts), stream, started, time.perf_counter()))
        return [[text] for text in texts]


def test_batcher_streams_run_batches_side_by_side_and_a_lone_batch_on_the_whole_model() -> None:
    """streams=2: a batch taken while the other worker is idle and nothing else waits runs on the whole
    model (stream=False), alone; batches taken under load run on one stream each, at the same time (the
    stand-in's barrier holds each stream call until the other one is in the model)."""
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _StreamModel()
    settings = ServeSettings(max_batch_size=2)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)

        def job(name: str) -> Job:
            return Job([name], [(1, 10)], "first", loop.create_future(), loop)

        lone = job("a")
        assert batcher.submit(lone) is None
        for _ in range(1000):  # until taken: the whole model runs it, held at its gate
            if batcher.queued == 0:
                break
            await asyncio.sleep(0.01)
        assert batcher.queued == 0, "the batcher never took the lone text"
        rest = [job(name) for name in "bcd"]
        for queued in rest:
            assert batcher.submit(queued) is None
        model.whole_model_gate.set()
        await asyncio.wait_for(asyncio.gather(lone.future, *(j.future for j in rest)), 30)
        batcher.stop(5)

    asyncio.run(scenario())
    by_text = {texts[0]: (stream, start, end) for texts, stream, start, end in model.calls}
    assert [texts for texts, *_ in model.calls][0] == ["a"] and by_text["a"][0] is False
    first_stream = min(start for _, stream, start, _ in model.calls if stream)
    assert first_stream >= by_text["a"][2], "no stream batch starts while the whole model is busy"
    assert sorted(t for texts, stream, *_ in model.calls if stream for t in texts) == ["b", "c", "d"]
    (b_and_c,) = [c for c in model.calls if c[0] == ["b", "c"]]
    (d,) = [c for c in model.calls if c[0] == ["d"]]
    assert b_and_c[2] < d[3] and d[2] < b_and_c[3], "the two stream batches ran at the same time"


def test_token_counter_counts_long_texts_through_the_models_token_cache(tiny_bundle: Any) -> None:
    """The server's counter (`TokenCounter.for_model`: the model's token cache and special tokens) costs
    every text as the tokenizer's own counts do, and is asked only for texts longer than a window of bytes."""
    from ner_export.runtime import NerModel
    from ner_export.runtime.session import load_tokenizer
    from ner_export.serve.batcher import TokenCounter

    model = NerModel.load(tiny_bundle)
    tokenizer = load_tokenizer(tiny_bundle / model.manifest.tokenizer_file)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    special = len(tokenizer.encode("a").ids) - len(tokenizer.encode("a", add_special_tokens=False).ids)
    assert model.special_tokens == special == 2
    asked: list[str] = []

    def count(text: str) -> int:
        asked.append(text)
        return model.count_tokens(text)

    max_length = model.manifest.max_length
    spied = TokenCounter(count, model.special_tokens, max_length, model.stride)
    by_tokenizer = TokenCounter(
        lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids), special, max_length, model.stride
    )
    long_text = " ".join(["John Smith lives in Paris and works for Reuters."] * 40)
    sentence = "Maria Lopez works for Reuters in London, said the minister."
    texts = ["", "Paris", "John Smith lives in Paris.", sentence, long_text]
    for text in texts:
        assert spied.cost(text) == by_tokenizer.cost(text) == TokenCounter.for_model(model).cost(text), text
    assert asked == [t for t in texts if len(t.encode()) > max_length - special]
    assert by_tokenizer.cost(long_text)[0] > 1, "the long text needs several windows"
