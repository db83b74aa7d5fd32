"""Opening an uploaded CSV file: its text encoding and its delimiter, found from its start, read as a stream.

The first ``SAMPLE_BYTES`` decide. UTF-8 (with or without a byte-order mark) is taken as it is; other bytes are
decoded in the encoding charset-normalizer finds (Windows-1252 when it fits as well as any, else Windows-1250,
Windows-1251, ...; UTF-16 with a byte-order mark), and a file whose encoding
cannot be found is refused, naming the line of the first byte that is not UTF-8. The delimiter is the one of
``,`` ``;`` tab ``|`` that the header line uses most (outside quotes), else ``,``: spreadsheet exports in many
locales separate with ``;``.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import IO

from charset_normalizer import from_bytes

SAMPLE_BYTES = 1 << 16
READ_BYTES = 8192
DELIMITERS = (",", ";", "\t", "|")
MAX_CHAOS = 0.2  # charset-normalizer's measure of how much decoded text looks like noise


class CsvEncodingError(ValueError):
    """The file is not text in an encoding we can tell; ``line`` is where the first undecodable byte is."""

    def __init__(self, line: int, found: str | None) -> None:
        guess = f"; the encoding found, {found}, does not read as text" if found else "; no text encoding fits it"
        super().__init__(f"is not UTF-8 text (line {line}){guess}; save it as UTF-8")
        self.line = line
        self.found = found


@dataclass(frozen=True)
class CsvFile:
    """A decoded stream of the file's text (newlines untouched, for the csv module), and what was found."""

    text: IO[str]
    encoding: str
    delimiter: str

    def reader_options(self) -> dict[str, str]:
        return {"delimiter": self.delimiter}


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``stream``, as one binary stream."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)


def _utf8_error(head: bytes, complete: bool) -> int | None:
    """The offset of the first byte of ``head`` that is not UTF-8, or None (a character cut at the end is fine)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def detect_encoding(head: bytes, complete: bool) -> str:
    """The Python codec to read a file that starts with ``head`` (``complete``: the whole file); raises
    ``CsvEncodingError``."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = _utf8_error(head, complete)
    if bad is None:
        return "utf-8-sig"
    best = from_bytes(head).best()
    # Short samples fit several single-byte code pages equally; Windows-1252 (spreadsheets saved in Western
    # locales) is by far the likeliest, so it wins whenever it reads as cleanly as the best guess.
    western = from_bytes(head, cp_isolation=["cp1252"]).best()
    if western is not None and (best is None or western.chaos <= best.chaos):
        best = western
    found = best.encoding if best is not None else None
    # UTF-16/32 without a byte-order mark, or text that reads as noise, is a guess about binary data.
    if found is None or found.startswith(("utf_16", "utf_32")) or best.chaos > MAX_CHAOS or b"\x00" in head:
        raise CsvEncodingError(head.count(b"\n", 0, bad) + 1, found)
    return found


def detect_delimiter(sample: str) -> str:
    """The delimiter the header line uses most, outside double quotes; ``,`` when it uses none."""
    header = next(iter(sample.splitlines()), "")
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def open_csv(stream: IO[bytes]) -> CsvFile:
    """Read the start of ``stream``, find its encoding and delimiter, and return the whole file as text."""
    parts, size, complete = [], 0, False
    while size < SAMPLE_BYTES:  # small reads: the upload streams through, never held whole
        part = stream.read(READ_BYTES)
        if not part:
            complete = True
            break
        parts.append(part)
        size += len(part)
    head = b"".join(parts)
    encoding = detect_encoding(head, complete)
    sample = head.decode(encoding, errors="ignore")
    text = io.TextIOWrapper(io.BufferedReader(_Prefixed(head, stream)), encoding=encoding, newline="")
    return CsvFile(text, codecs.lookup(encoding).name, detect_delimiter(sample))
