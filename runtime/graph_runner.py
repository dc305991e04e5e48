"""Running the graph: token windows packed into padded batches, run on a model's session or its streams.

`GraphRunner.windows_logits` takes token rows with the windows each is read in (`encoding.TokenRows`),
sorts the windows by length, packs them into padded batches under a size and token budget
(`pack_batches`, with the engine's padding rule `shares_batch`), runs the batches and copies each
window's owned tokens back into its row: every token takes its scores from the window where it sits
furthest from an edge.

Design choices:

- Every plain run goes through one method, `run_feeds` (feeds in, logits out, with IO binding on
  CUDA), so there is a single seam between the runtime and the engine; the streams' runs are the
  only other path.
- Streams (`StreamSessions`): for inputs of many batches, `count` batches run at once on a second
  session with a small intra-op pool each (OpenVINO: one model compiled with `count` streams), made on
  first use so a model that only answers single texts never pays for it. Batches land in the same
  places whichever path ran them, so results do not depend on it.
- With `decoded`, a run returns the graph's decoding columns after the logits (`decoding.DECODED_OUTPUT`)
  instead of the logits alone; `has_decoding_columns` says whether plain runs can ask for them
  (onnxruntime without IO binding, on a graph exported with them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from .checks import require_positive_int
from .decoding import DECODED_COLUMNS, DECODED_OUTPUT
from .encoding import GraphFeeds, TokenRows
from .session import Row

__all__ = ["BatchRun", "GraphRunner", "Piece", "StreamSessions", "auto_streams", "pack_batches"]

BatchRun = Callable[[list[np.ndarray], int, "list[np.ndarray] | None"], np.ndarray]
"""Runs one padded batch (token id rows, width, token type rows) and returns its logits."""

Piece = tuple[int, int, int, int, int]
"""One window of one row: (row, start, end, owned_start, owned_end)."""


def auto_streams(threads: int, device: str = "cpu") -> int:
    """How many streams `NerModel.load(streams=None)` runs large inputs on: one per thread on CPU
    (measured fastest on 2 cores; benchmarks/PERFORMANCE.md), one on CUDA."""
    return max(1, threads) if device == "cpu" else 1


class StreamSessions:
    """`count` concurrent runs of one graph: one extra session, made on first use, whose small intra-op
    pool each run uses alone (OpenVINO: a model compiled with `count` streams), and the threads that
    call it (onnxruntime and OpenVINO release the GIL)."""

    def __init__(self, count: int, make_session: Callable[[], Any]) -> None:
        self.count = count
        self._make_session = make_session
        self._session: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._make_session()
        return self._session

    def pool(self) -> ThreadPoolExecutor:
        self.session  # noqa: B018 - build the session before the threads race for it
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.count, thread_name_prefix="ner-export-stream")
        return self._executor


def pack_batches(
    pieces: Sequence[Piece],
    batch_size: int,
    token_budget: int,
    special: int,
    shares_batch: Callable[[int, int], bool],
) -> list[tuple[list[Piece], int]]:
    """Consecutive runs of `pieces` (sorted longest first) that make one batch each, with its width.

    A batch holds at most `batch_size` windows and `token_budget` padded tokens, and a window that
    would pad badly with its batch's longest (`shares_batch`) starts the next batch. `special` is the
    special tokens each window is read with.
    """
    batches = []
    start = 0
    while start < len(pieces):
        longest = pieces[start][2] - pieces[start][1] + special
        count = max(1, min(batch_size, token_budget // longest))
        end = start + 1
        while end < min(len(pieces), start + count) and shares_batch(
            pieces[end][2] - pieces[end][1] + special, longest
        ):
            end += 1
        batches.append((list(pieces[start:end]), longest))
        start = end
    return batches


class GraphRunner:
    """Runs a model's graph on padded batches: on its session, or on its streams (`StreamSessions`).

    n_labels: the width of the graph's logits. token_budget: most padded tokens in one batch.
    """

    def __init__(
        self,
        session: Any,
        feeds: GraphFeeds,
        *,
        n_labels: int,
        device: str,
        backend: str,
        io_binding: bool,
        token_budget: int,
        streams: StreamSessions | None,
    ) -> None:
        self.session = session
        self.feeds = feeds
        self.n_labels = n_labels
        self.device = device
        self.backend = backend
        self.io_binding = io_binding
        self.token_budget = token_budget
        self.streams = streams
        self.output_name = session.get_outputs()[0].name
        # the graph's own decoding columns after the logits (export/decoding_outputs.py), on plain runs
        self.has_decoding_columns = (
            backend == "onnxruntime" and not io_binding and any(o.name == DECODED_OUTPUT for o in session.get_outputs())
        )

    def shares_batch(self, narrow: int, wide: int) -> bool:
        """Whether a window `narrow` tokens wide runs in one batch with one `wide` tokens wide
        (`NerModel.shares_batch` gives the measurements behind the rule)."""
        if self.backend == "openvino":
            return narrow >= wide
        if self.device == "cpu":
            return 4 * narrow >= 3 * wide
        return 2 * narrow > wide

    def run(
        self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None, decoded: bool = False
    ) -> np.ndarray:
        """The logits of one padded batch, or with `decoded` the graph's `DECODED_OUTPUT` (logits first)."""
        return self.run_feeds(self.feeds.batch(rows, width, types), decoded)

    def run_feeds(self, feeds: dict[str, np.ndarray], decoded: bool = False) -> np.ndarray:
        """`run` of built feeds: every plain run of the graph goes through here."""
        if not self.io_binding:
            logits: np.ndarray = self.session.run([DECODED_OUTPUT if decoded else self.output_name], feeds)[0]
            return logits
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self.output_name, self.device)
        self.session.run_with_iobinding(binding)
        bound: np.ndarray = binding.copy_outputs_to_cpu()[0]
        return bound

    def run_stream(
        self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None, decoded: bool = False
    ) -> np.ndarray:
        """`run` on the streams' session, from the calling thread."""
        assert self.streams is not None  # only called when the model has streams
        output = DECODED_OUTPUT if decoded else self.output_name
        logits: np.ndarray = self.streams.session.run([output], self.feeds.batch(rows, width, types))[0]
        return logits

    def run_largest_batch(self, batch_size: int) -> None:
        """Run the largest batch `windows_logits` makes at `batch_size` (that many full-width rows, within
        the token budget) twice, on the session and, with streams, on every stream at once: a shape's
        first run allocates its tensors one by one and records their layout, and from its second run on
        onnxruntime takes them as one block of that layout, a different allocation the arena must also
        hold; so a server runs this before it takes requests."""
        feeds = self.feeds
        width = feeds.max_length
        rows = [[feeds.pad_id] * (width - feeds.special)] * max(1, min(batch_size, self.token_budget // width))
        decoded = self.has_decoding_columns
        for _ in range(2):
            self.run(rows, width, decoded=decoded)
            if self.streams is not None:
                pool = self.streams.pool()
                runs = [pool.submit(self.run_stream, rows, width, None, decoded) for _ in range(self.streams.count)]
                for run in runs:
                    run.result()

    def one_stream(self, decoded: bool) -> BatchRun | None:
        """A run on a single stream from the calling thread (`NerModel.predict(stream=True)`), or None
        for a model without streams."""
        return partial(self.run_stream, decoded=decoded) if self.streams is not None else None

    def stream_pool(self, n_batches: int) -> ThreadPoolExecutor | None:
        """The stream pool when `n_batches` batches are worth spreading over it, else None."""
        if self.streams is None or n_batches < 2 * self.streams.count:
            return None
        return self.streams.pool()

    def windows_logits(
        self, rows: TokenRows, batch_size: int, run: BatchRun | None = None, decoded: bool = False
    ) -> list[np.ndarray]:
        """Logits of each token row from its planned windows (start, end, owned_start, owned_end).

        Rows outside every owned range are left unset. With `decoded` each row also carries the graph's
        decoding columns after the logits (`DECODED_OUTPUT`), and `run`, when given, must return them.
        Windows are sorted by length and batched by `pack_batches`: a few random-length texts (a
        server's micro-batch) then cost about their own tokens, not the longest one's times their
        count. Batches run one after the other, or on the streams when there are enough of them;
        either way each batch's rows land in the same places.
        """
        require_positive_int("batch_size", batch_size)
        ids, types = rows.ids, rows.types
        pieces = [(i, *w) for i, plan in enumerate(rows.plans) for w in plan]
        pieces.sort(key=lambda p: p[2] - p[1], reverse=True)
        columns = self.n_labels + (len(DECODED_COLUMNS) if decoded else 0)
        outputs: list[np.ndarray] = [np.empty((len(row), columns), dtype=np.float32) for row in ids]
        batches = pack_batches(pieces, batch_size, self.token_budget, self.feeds.special, self.shares_batch)
        offset = len(self.feeds.prefix)

        def run_batch(batch: list[Piece], width: int, runner: BatchRun) -> None:
            type_rows = [types[i][a:b] for i, a, b, _, _ in batch] if types is not None else None
            logits = runner([ids[i][a:b] for i, a, b, _, _ in batch], width, type_rows)
            for row, (i, a, _, own_a, own_b) in zip(logits, batch, strict=True):
                outputs[i][own_a:own_b] = row[offset + own_a - a : offset + own_b - a]

        pool = self.stream_pool(len(batches)) if run is None else None
        if pool is None:
            for batch, width in batches:
                run_batch(batch, width, run or partial(self.run, decoded=decoded))
        else:
            stream = partial(self.run_stream, decoded=decoded)
            for future in [pool.submit(run_batch, batch, width, stream) for batch, width in batches]:
                future.result()
        return outputs
