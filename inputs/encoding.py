"""A file's first bytes: read them (from a pipe too) and refuse UTF-16/32 before any record is made.

Design trade-offs:
- UTF-16/32 files (a byte order mark, or NUL bytes at the start) are refused with the encoding named
  and the `iconv` line that converts them, since reading them as UTF-8 would produce garbage rows
  rather than errors. Without a byte order mark the guess comes from where the NUL bytes sit.
- stdin cannot seek back, so the head read from a pipe is put back in front of the rest of the stream
  (`PrefixedStream`), and it is read only until the first line is complete: a producer that writes one
  line and waits for its answer is not kept waiting for more input.
"""

from __future__ import annotations

import codecs
import io
from typing import IO, Any

from ner_export.runtime.errors import InputError

__all__ = ["BOM_UTF8", "check_encoding", "read_head", "read_available", "PrefixedStream"]

HEAD_BYTES = 4096
BOM_UTF8 = b"\xef\xbb\xbf"

_BOMS = [
    (codecs.BOM_UTF32_LE, "UTF-32-LE", "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32-BE", "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE", "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16-BE", "UTF-16"),
]


def _guess_wide_encoding(head: bytes, name: str) -> tuple[str, str]:
    """(encoding, iconv name) that NUL bytes in `head` point to; `InputError` when they fit no pattern."""
    sample = head[: len(head) - len(head) % 4] or head
    zeros = [sum(1 for b in sample[k::4] if b == 0) / max(1, len(sample[k::4])) for k in range(4)]
    even, odd = (zeros[0] + zeros[2]) / 2, (zeros[1] + zeros[3]) / 2
    if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9:
        return "UTF-32-LE", "UTF-32LE"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9:
        return "UTF-32-BE", "UTF-32BE"
    if odd > 0.5 and odd > 2 * even:
        return "UTF-16-LE", "UTF-16LE"
    if even > 0.5 and even > 2 * odd:
        return "UTF-16-BE", "UTF-16BE"
    raise InputError(
        f"{name}: the file holds NUL bytes near its start: binary data, or text in an encoding other than UTF-8"
    )


def check_encoding(head: bytes, name: str) -> None:
    """Raise `InputError` naming the encoding when a file's first bytes show UTF-16 or UTF-32.

    A byte order mark names it exactly; without one, NUL bytes in the first block give it away (UTF-8
    text has none), and where they sit tells which of UTF-16/32, little or big endian, it most likely is.
    """
    for bom, encoding, iconv in _BOMS:
        if head.startswith(bom):
            raise InputError(
                f"{name}: the file is {encoding} (it starts with a {encoding} byte order mark); "
                "ner-export reads UTF-8: "
                f"convert it first, e.g. iconv -f {iconv} -t UTF-8 {name} > converted.txt"
            )
    if b"\x00" not in head:
        return
    guess, iconv = _guess_wide_encoding(head, name)
    raise InputError(
        f"{name}: the file looks like {guess} without a byte order mark (NUL bytes between its characters); "
        f"ner-export reads UTF-8: convert it first, e.g. iconv -f {iconv} -t UTF-8 {name} > converted.txt"
    )


def read_available(handle: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes, returning as soon as some have arrived (a pipe's `read(n)` waits for all n)."""
    read1 = getattr(handle, "read1", None)
    data: bytes = read1(size) if read1 is not None else handle.read(size)
    return data


def read_head(handle: IO[bytes]) -> tuple[bytes, IO[bytes]]:
    """The first bytes of a stream, and a stream that still yields them (stdin cannot seek back).

    From a pipe it reads only until the first line is complete (or 4 KiB), so a producer that writes a
    line and waits for its answer is not kept waiting for more input.
    """
    if handle.seekable():
        head = handle.read(HEAD_BYTES)
        handle.seek(0)
        return head, handle
    head = b""
    while len(head) < HEAD_BYTES and (len(head) < 4 or b"\n" not in head):
        data = read_available(handle, HEAD_BYTES - len(head))
        if not data:
            break
        head += data
    return head, io.BufferedReader(PrefixedStream(head, handle))


class PrefixedStream(io.RawIOBase):
    """A non-seekable stream with bytes already read put back in front."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = read_available(self._rest, len(buffer))
        buffer[: len(data)] = data
        return len(data)
