"""Dynamic micro-batching: concurrent requests' texts share model calls, and never change an answer.

A worker thread owns the `NerModel` (it loads it, warms it, then runs batches); the event loop
only queues texts and awaits futures, so HTTP handling and inference overlap (onnxruntime and the
tokenizer release the GIL). When the model is free the worker takes whatever is queued, oldest first,
up to `max_batch_size` texts and `max_batch_tokens` padded tokens, optionally waiting `max_wait_ms`
after the oldest text's arrival for more; with no traffic there is no added latency. It skips, for the
next batch, a text whose estimated width would pad badly with those taken (the runtime's own rule,
`NerModel.shares_batch`): the runtime would run it as a model run of its own inside the same call, and
every request of the call would wait for both runs. Taking work in the worker, not in an asyncio task,
means the next batch starts the moment the previous one ends, without a hop through a possibly busy
event loop.

Streams: with `streams` > 1, that many workers take batches from the one queue. A batch taken while
every other worker is idle and nothing else waits runs on the whole model (all threads; the lowest
latency for a lone request), and the other workers wait for it; batches taken under load run side by
side, each on one stream of `threads / streams` threads, and a worker takes at most its share of the
queue (queued texts / streams), leaving the rest to the next worker that comes free rather than making
it wait for one long batch. On a small model one thread wastes little on a lone text, where two
threads spend much of a short run waiting for each other, so under load the same CPUs answer more
requests (PERFORMANCE.md, serving).

Exactness: a text's entities must equal what an offline `model.predict` gives. On a batch-invariant
graph any batching does; on one that is not (dynamic int8 activation scales), each request is run as
one call of its own texts, exactly as offline `predict(texts)` would, unless cross-request batching is
explicitly allowed. Texts are queued individually with the request's aggregation; one batch holds one
aggregation. A failed batch is retried request by request, so one bad text fails only its request.
A cancelled request (client gone, timed out) is removed from the queue and never computed.

Admission: a request is refused (429) when its texts would not fit under `max_queued_texts`, or when
the work ahead of it would keep it from the model longer than `max_queue_ms`. That wait is estimated
from the queued texts' token estimates (`TokenCounter`), the running batch's remainder and the model's
measured speed in the same units, so the bound follows what the machine delivers now rather than a
text count fixed in advance: under overload an accepted request waits about `max_queue_ms` plus its
own batch, whatever the texts' lengths. The speed is the faster of two averages over recent batches:
all of them, and those of at least a quarter of `max_batch_size` texts. A queue long enough to matter
runs in such batches, while lone texts after idle gaps run slower (cold caches) and would, alone,
make a burst below saturation look like overload. Whatever the estimate, the queue may always hold
one full batch (`max_batch_size` texts) and an empty queue takes any request: otherwise a slower
machine would admit fewer texts, run smaller and slower batches, and admit fewer still (measured:
299-384 served/s at 1,300 offered against 427-449 without a time bound). The first batch's speed is
unknown, so until then only the text count bounds the queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ner_export.runtime import Entity, NerModel
from ner_export.runtime.context import plan_windows

from .heartbeat import BEAT_INTERVAL
from .metrics import Metrics
from .request_errors import retry_after_seconds
from .settings import ServeSettings

__all__ = ["Job", "Batcher", "TokenCounter"]

log = logging.getLogger("ner_export.serve")


@dataclass(eq=False)
class Job:
    """One request's texts, waiting for their entities. Created and awaited on the event loop."""

    texts: list[str]
    costs: list[tuple[int, int]]  # per text: (windows, padded width of its widest window)
    aggregation: str
    future: asyncio.Future[list[list[Entity]]]
    loop: asyncio.AbstractEventLoop
    enqueued_at: float = field(default_factory=time.perf_counter)
    results: list[Any] = field(default_factory=list)
    remaining: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)
        self.remaining = len(self.texts)


@dataclass(frozen=True)
class QueuedText:
    """One text of a job, in the queue: the job and the text's index in it."""

    job: Job
    index: int


class TokenCounter:
    """Padded tokens a text costs in a model call, estimated before it is queued.

    A text of at most one window's worth of UTF-8 bytes is counted by its bytes: no WordPiece or
    byte-level BPE tokenizer makes more tokens than that, so the estimate is an upper bound and costs
    nothing, where tokenizing every text on the event loop (the runtime tokenizes it again) cost more
    than all the rest of a request's handling there. Longer texts, which may need several windows, are
    counted exactly by `count`: the server passes the model's `NerModel.count_tokens`, which reads the
    runtime's token cache and fills it for the model's own call on the same text, so such a text is
    tokenized once, not twice. The runtime enforces its token budget exactly in any case; this only
    steers how many texts the batcher takes.
    """

    def __init__(self, count: Callable[[str], int], special: int, max_length: int, stride: int) -> None:
        self._count = count
        self._special = special  # tokens the model adds around each window's text
        self._window = max_length - special
        self._stride = stride

    @classmethod
    def for_model(cls, model: NerModel) -> TokenCounter:
        """The counter of `model`'s windows, counting through its token cache."""
        return cls(model.count_tokens, model.special_tokens, model.manifest.max_length, model.stride)

    def cost(self, text: str) -> tuple[int, int]:
        """(windows, padded width) of one text; an empty text costs nothing."""
        size = len(text.encode("utf-8"))
        if size <= self._window:
            return (1, size + self._special) if size else (0, 0)
        n = self._count(text)
        windows = len(plan_windows(n, self._window, self._stride))
        return windows, (min(n, self._window) + self._special) if windows else 0


class Batcher:
    """The queue and the worker thread that runs the model on it. Thread-safe; see the module docstring."""

    def __init__(
        self,
        load: Callable[[], NerModel],
        settings: ServeSettings,
        metrics: Metrics,
        on_ready: Callable[[NerModel], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._load = load
        self._settings = settings
        self._metrics = metrics
        self._on_ready = on_ready
        self._on_failure = on_failure
        self._queue: deque[QueuedText] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.streams = 1  # batches on the model at once, each from a worker thread of its own: the model's streams
        self.model: NerModel | None = None
        self.cross_request = False  # decided once the model is loaded
        self._shares_batch: Callable[[int, int], bool] = lambda narrow, wide: True  # the model's rule, once loaded
        # the speeds are one worker's (one batch at a time); `streams` workers together do `streams` times it
        self.texts_per_second = 0.0  # smoothed throughput in texts
        self.cost_per_second = 0.0  # smoothed throughput in the units of `TokenCounter` (windows x width)
        self._cost_per_second_full = 0.0  # ... of batches of at least a quarter of max_batch_size texts
        self._queued_cost = 0  # estimated tokens of the queued texts
        self._running: dict[int, tuple[int, float]] = {}  # worker -> (cost, start) of the batch it runs
        self._whole_model_busy = False  # a batch runs on the whole model (every thread): the other workers wait
        self.alive = True
        # called from each worker thread between batches and every BEAT_INTERVAL while it waits for work:
        # a supervisor watching it (`Heartbeat.beat_batcher`) sees a worker stuck inside a model call fall silent
        self.on_beat: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ event-loop side
    def start(self) -> None:
        self._threads = [threading.Thread(target=self._load_then_work, name="ner-serve-batcher", daemon=True)]
        self._threads[0].start()

    def stop(self, timeout: float) -> int:
        """Stop the worker after its current batch (waits at most `timeout` seconds); returns how many
        queued texts were dropped. After a drain nothing is queued: what is left belongs to requests
        already abandoned or cancelled, and is not computed."""
        with self._cond:
            self._stopping = True
            dropped = len(self._queue)
            self._queue.clear()
            self._queued_cost = 0
            self._metrics.queue_depth.set(0)
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, job: Job) -> str | None:
        """Queue a job's texts and return None; or queue nothing and name the limit that refuses them:
        "queue_full" (`max_queued_texts`) or "queue_wait" (`max_queue_ms`; see the module docstring)."""
        with self._cond:
            refused = self._settings.refusal(len(self._queue), len(job.texts), self._wait_ahead())
            if refused is not None:
                return refused
            self._queue.extend(QueuedText(job, i) for i in range(len(job.texts)))
            self._queued_cost += sum(w * width for w, width in job.costs)
            self._metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        return None

    def cancel(self, job: Job) -> int:
        """Drop a job's texts that are still queued; returns how many were dropped (never computed)."""
        with self._cond:
            job.cancelled = True
            kept = deque(item for item in self._queue if item.job is not job)
            dropped = len(self._queue) - len(kept)
            if dropped:
                self._queue = kept
                self._queued_cost = sum(_cost(item) for item in kept)
            self._metrics.queue_depth.set(len(self._queue))
            return dropped

    def expected_wait(self) -> float:
        """Seconds a text queued now would wait for the model (estimated; 0 before the first batch)."""
        with self._cond:
            return self._wait_ahead()

    def _wait_ahead(self) -> float:
        rate = max(self.cost_per_second, self._cost_per_second_full)
        if rate <= 0:
            return 0.0
        now = time.perf_counter()
        running = sum(max(0.0, cost / rate - (now - since)) for cost, since in self._running.values())
        return (running + self._queued_cost / rate) / self.streams

    def retry_after(self) -> int:
        """Seconds a client should wait before retrying: the queue's expected drain time, at least 1."""
        rate = self.texts_per_second * self.streams
        return retry_after_seconds(max(self.expected_wait(), len(self._queue) / rate if rate > 0 else 1.0))

    # ------------------------------------------------------------------ worker side
    def _load_then_work(self) -> None:
        try:
            model = self._load()
            self.model = model
            self.streams = model.streams
            self._shares_batch = model.shares_batch
            self.cross_request = model.batch_invariant or self._settings.allow_batch_dependent
            self._on_ready(model)
        except BaseException as exc:  # noqa: BLE001 - reported through /health, /ready and the log
            self.alive = False
            self._on_failure(exc)
            return
        for k in range(1, self.streams):
            thread = threading.Thread(target=self._work, args=(model,), name=f"ner-serve-batcher-{k}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._work(model)

    def _work(self, model: NerModel) -> None:
        """One worker: take a batch, run it, until stopped."""
        try:
            while True:
                self.on_beat()
                taken = self._take()
                if taken is None:
                    return
                batch, whole_model = taken
                if batch:
                    self._run(model, batch, whole_model)
        except BaseException as exc:  # noqa: BLE001 - a bug here must show in /health, not hang requests
            self.alive = False
            log.exception("the batcher stopped")
            self._on_failure(exc)
            self._fail_queued(exc)

    def _take(self) -> tuple[list[QueuedText], bool] | None:
        """Wait for work and take one batch, and whether it runs on the whole model (a lone batch while
        every other worker is idle) rather than on one stream; None once stopping with an empty queue."""
        settings = self._settings
        with self._cond:
            while not self._queue or self._whole_model_busy:
                if self._stopping and not self._queue:
                    return None
                self._cond.wait(BEAT_INTERVAL)
                self.on_beat()
            if settings.max_wait_ms > 0 and self.cross_request:  # within one request there is nothing to wait for
                while self._queue and len(self._queue) < settings.max_batch_size and not self._stopping:
                    left = self._queue[0].job.enqueued_at + settings.max_wait_ms / 1000 - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    return [], False  # everything waiting was cancelled
            batch = self._take_across_requests() if self.cross_request else self._take_oldest_request()
            cost = sum(_cost(item) for item in batch)
            self._queued_cost -= cost
            whole_model = self.streams == 1 or (not self._running and not self._queue)
            self._whole_model_busy = whole_model and self.streams > 1
            self._running[threading.get_ident()] = (cost, time.perf_counter())
            self._metrics.queue_depth.set(len(self._queue))
        return batch, whole_model

    def _take_oldest_request(self) -> list[QueuedText]:
        """All texts of the oldest request (they are queued together): one request, one model call."""
        job = self._queue[0].job
        batch = []
        while self._queue and self._queue[0].job is job:
            batch.append(self._queue.popleft())
        return batch

    def _take_across_requests(self) -> list[QueuedText]:
        """Oldest texts first, of the oldest text's aggregation and of a width that pads well with the
        texts taken before them (`NerModel.shares_batch`, the runtime's rule), up to the size and
        token limits. A text left out stays in its place for the next batch, which starts as soon as
        this one ends: mixed widths would run as several model runs inside one call anyway, and every
        request of the call would wait for all of them."""
        settings = self._settings
        aggregation = self._queue[0].job.aggregation
        taken: list[QueuedText] = []
        kept: list[QueuedText] = []
        windows = width = 0
        narrowest = 0  # of the texts taken that cost anything (0: none yet)
        # with streams, a fair share of the queue: the other workers take the rest as they come free
        most = max(1, min(settings.max_batch_size, -(-len(self._queue) // self.streams)))
        while self._queue:
            item = self._queue[0]
            text_windows, text_width = item.job.costs[item.index]
            if item.job.aggregation != aggregation or (
                text_width and narrowest and not self._shares_batch(min(narrowest, text_width), max(width, text_width))
            ):
                kept.append(self._queue.popleft())
                continue
            if taken and (
                len(taken) + 1 > most or (windows + text_windows) * max(width, text_width) > settings.max_batch_tokens
            ):
                break
            taken.append(self._queue.popleft())
            windows, width = windows + text_windows, max(width, text_width)
            if text_width:
                narrowest = min(narrowest, text_width) if narrowest else text_width
        self._queue.extendleft(reversed(kept))
        return taken

    def _run(self, model: NerModel, batch: list[QueuedText], whole_model: bool) -> None:
        settings = self._settings
        started = time.perf_counter()
        for item in batch:
            self._metrics.queue_wait.observe(started - item.job.enqueued_at)
        texts = [item.job.texts[item.index] for item in batch]
        aggregation = batch[0].job.aggregation
        try:
            results: list[Any] = model.predict(
                texts, batch_size=settings.max_batch_size, aggregation=aggregation, stream=not whole_model
            )
        except Exception:  # noqa: BLE001 - isolate the failing request(s) below
            results = self._run_each_job(model, batch, whole_model)
        elapsed = time.perf_counter() - started
        windows = sum(item.job.costs[item.index][0] for item in batch)
        width = max(item.job.costs[item.index][1] for item in batch)
        self._metrics.inference.observe(elapsed)
        self._metrics.batch_size.observe(len(batch))
        self._metrics.batch_tokens.observe(windows * width)
        self._metrics.texts.inc(len(batch))
        self.texts_per_second = _smooth(self.texts_per_second, len(batch) / max(elapsed, 1e-6))
        cost = sum(_cost(item) for item in batch)
        with self._cond:
            if cost:
                rate = cost / max(elapsed, 1e-6)
                self.cost_per_second = _smooth(self.cost_per_second, rate)
                if len(batch) >= max(2, settings.max_batch_size // 4):
                    self._cost_per_second_full = _smooth(self._cost_per_second_full, rate)
            self._running.pop(threading.get_ident(), None)
            if whole_model and self._whole_model_busy:
                self._whole_model_busy = False
                self._cond.notify_all()  # a worker may be waiting for the whole model to be free
        settled: dict[int, Job] = {}
        with self._cond:  # another worker may be filling in other texts of the same request
            for item, result in zip(batch, results, strict=True):
                job = item.job
                job.results[item.index] = result
                job.remaining -= 1
                if job.remaining == 0 or isinstance(result, BaseException):
                    settled[id(job)] = job
        for job in settled.values():
            _settle_from_worker(job)

    def _run_each_job(self, model: NerModel, batch: list[QueuedText], whole_model: bool) -> list[Any]:
        """After a failed batch: each request's texts alone; a request that fails again gets its error."""
        by_job: dict[int, list[int]] = {}
        for position, item in enumerate(batch):
            by_job.setdefault(id(item.job), []).append(position)
        results: list[Any] = [None] * len(batch)
        for positions in by_job.values():
            job = batch[positions[0]].job
            try:
                found = model.predict(
                    [job.texts[batch[p].index] for p in positions],
                    batch_size=self._settings.max_batch_size,
                    aggregation=job.aggregation,
                    stream=not whole_model,
                )
            except Exception as exc:  # noqa: BLE001 - becomes this request's 422/500
                found = [exc] * len(positions)
            for p, result in zip(positions, found, strict=True):
                results[p] = result
        return results

    def _fail_queued(self, exc: BaseException) -> None:
        with self._cond:
            items, self._queue = list(self._queue), deque()
            self._queued_cost = 0
            self._whole_model_busy = False  # a failed whole-model batch must not keep the other workers waiting
            self._cond.notify_all()
        for item in items:
            item.job.results[item.index] = exc
            _settle_from_worker(item.job)


def _cost(item: QueuedText) -> int:
    windows, width = item.job.costs[item.index]
    return windows * width


def _smooth(average: float, sample: float) -> float:
    """An exponential moving average over recent batches (the first sample starts it)."""
    return sample if average == 0 else 0.8 * average + 0.2 * sample


def _settle_from_worker(job: Job) -> None:
    """From the worker: settle the job on its event loop, unless that loop is gone (server stopped)."""
    try:
        job.loop.call_soon_threadsafe(_settle_on_loop, job)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle_on_loop(job: Job) -> None:
    """On the event loop: resolve the job's future with its results, or its first error."""
    if job.future.done() or job.cancelled:  # nobody awaits a cancelled job's future any more
        return
    error = next((r for r in job.results if isinstance(r, BaseException)), None)
    if error is not None:
        job.future.set_exception(error)
    elif job.remaining == 0:
        job.future.set_result(job.results)
