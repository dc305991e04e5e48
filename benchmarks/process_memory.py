"""Peak memory of a process tree: the summed proportional set size (PSS), sampled in a background thread.

Design trade-offs:
- PSS, not RSS: Ray's raylet, GCS and workers are children of the driver, and PSS counts a shared page
  once, where summed RSS would count the object store once per process that maps it. Where the kernel
  has no `smaps_rollup`, a process's RSS stands in.
- Reading PSS is not free: the kernel walks every mapping, and one sample of a Ray tree (a dozen
  processes mapping the object store) costs ~50 ms of CPU on a 2-core machine, so sampling every 0.2 s
  would take about a tenth of it from the Ray runs only. Samples start 0.1 s apart and double up to the
  interval (2 s by default): short runs still get samples, long ones pay little. The sampler's own CPU
  time is kept, so a report can show what it cost.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["process_tree", "pss_kb", "PeakMemory"]


def process_tree(root: int) -> list[int]:
    """The pids of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_kb(pid: int) -> int:
    """A process's PSS in KiB (its RSS where PSS is unavailable; 0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PeakMemory:
    """Samples the summed PSS of a process tree in a background thread; `stop` returns the peak in MB."""

    def __init__(self, pid: int, interval: float = 2.0) -> None:
        self.peak_kb = 0
        self.cpu_s = 0.0  # CPU time the sampling itself took (it competes with the engine)
        self._pid, self._interval = pid, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def _sample_until_stopped(self) -> None:
        wait = 0.1  # doubled up to the interval: short runs still get samples, long ones pay little
        while not self._done.is_set():
            began = time.thread_time()
            self.peak_kb = max(self.peak_kb, sum(pss_kb(p) for p in process_tree(self._pid)))
            self.cpu_s += time.thread_time() - began
            self._done.wait(wait)
            wait = min(self._interval, 2 * wait)

    def stop(self) -> float:
        """Stop sampling; the peak summed PSS in MB (one decimal)."""
        self._done.set()
        self._thread.join()
        return round(self.peak_kb / 1024, 1)
