"""The lines a CSV reader would misread, found and settled before DuckDB or pandas reads.

The Spark job reads the input as text lines and parses each one on its own, so a stray quote
spoils one line. A CSV reader lets a quoted field run across line breaks: one unclosed quote
swallows the lines up to the next quote character (DuckDB's parallel reader with
`ignore_errors` even dropped every later row; polars fails the scan; pandas fails at the end of
the file). And DuckDB and pandas read a line with a trailing comma as 8 fields. `scan_input`
makes one vectorised pass (numpy, 32 MiB at a time) over the bytes to find:

- lines with an odd number of `"` (the job's `unclosed_quote`);
- lines ending in a comma (a 9th, empty field: `wrong_field_count`; or an empty Country);
- repeats of the header line (the job counts every line equal to the header as a header);
- the unterminated last line, when it does not look like an 8-field line.

It classifies each of them as the job does (`classify_line`: the line reasons, then the
plain-Python rules) and counts the lines as Hadoop's reader splits them ("\\n"; "\\r\\n" is one
break). Only when it found any does the engine read a copy of the file without those lines
(`input_for_reader`); every synthetic input is read as it is.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retail_pipeline import rules

UTF8_BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 32 * 1024 * 1024
NEWLINE, CARRIAGE_RETURN, COMMA, QUOTE = b"\n"[0], b"\r"[0], b","[0], b'"'[0]


class InputError(ValueError):
    """The input is not the data set's CSV (the message names the file and why)."""


class AccountingError(RuntimeError):
    """Lines were lost or counted twice."""


def classify_line(text: str, *, truncated_last_line: str | None) -> str | None:
    """One raw line's quarantine reason, as the Spark job decides it (None: well formed)."""
    if text.strip(" ") == "":
        return "empty_line"
    if truncated_last_line is not None and text == truncated_last_line:
        return "truncated_last_line"
    if text.count('"') % 2:
        return "unclosed_quote"
    fields = next(csv.reader([text]), [])
    if len(fields) != len(rules.RAW_COLUMNS):
        return "wrong_field_count"
    parsed = rules.parse_record(dict(zip(rules.RAW_COLUMNS, fields, strict=True)))
    return parsed if isinstance(parsed, str) else None


@dataclass(frozen=True)
class InputScan:
    path: Path
    header_line: str
    read: int  # data lines, as the job counts them (header repeats excluded)
    set_aside: tuple[tuple[int, int], ...]  # byte ranges [start, end) the engine does not read
    set_aside_reasons: Mapping[str, int]  # their quarantine reasons (header repeats not included)
    header_repeats: int
    truncated_last_line: str | None  # the last line's text when the file has no final break
    # The last line's 8 fields when the engine reads it and must quarantine it itself.
    truncated_last_fields: tuple[str, ...] | None
    lone_carriage_returns: int  # Hadoop also splits lines on a lone "\r"; the references do not
    seconds: float | None

    @classmethod
    def of_lines(cls, path: Path, header_line: str, read: int, truncated_last_line: str | None) -> InputScan:
        """For an engine that splits lines itself (polars): nothing set aside, nothing scanned."""
        return cls(path, header_line, read, (), {}, 0, truncated_last_line, None, 0, None)

    @property
    def lines_for_reader(self) -> int:
        return self.read - sum(self.set_aside_reasons.values())


def check_header(path: Path, first_line: bytes) -> str:
    text = first_line.removeprefix(UTF8_BOM).removesuffix(b"\n").removesuffix(b"\r").decode()
    columns = tuple(name.strip() for name in next(csv.reader([text]), []))
    if columns != rules.RAW_COLUMNS:
        raise InputError(f"{path}: the first line should be {rules.RAW_HEADER!r} but is {text[:200]!r}")
    return text


def _blocks(source: io.BufferedReader) -> Iterator[tuple[bytearray, int]]:
    """(buffer, length): buffer[:length] holds whole lines (the last block may lack its final
    break). The buffer is reused: use it before asking for the next block."""
    buffer, filled = bytearray(BLOCK_BYTES), 0
    while True:
        with memoryview(buffer) as view:
            count = source.readinto(view[filled:])
        filled += count
        cut = buffer.rfind(b"\n", 0, filled) + 1 if count else filled
        if count and cut == 0:
            if filled == len(buffer):  # a line longer than the buffer
                buffer.extend(bytes(len(buffer)))
            continue
        if cut:
            yield buffer, cut
        buffer[: filled - cut] = buffer[cut:filled]
        filled -= cut
        if not count:
            return


def _suspect_lines(block: np.ndarray) -> tuple[int, int, list[tuple[int, int]]]:
    """(line breaks, lone CRs, [(start, end)] of lines with odd quotes or a trailing comma)."""
    breaks = np.flatnonzero(block == NEWLINE)
    before = np.where(breaks >= 1, block[breaks - 1], 0)
    crlf = before == CARRIAGE_RETURN
    lone_cr = int(np.count_nonzero(block == CARRIAGE_RETURN)) - int(np.count_nonzero(crlf))
    last_char = np.where(crlf, np.where(breaks >= 2, block[breaks - 2], 0), before)
    suspect = set(np.flatnonzero(last_char == COMMA).tolist())
    quotes = np.flatnonzero(block == QUOTE)
    if len(quotes):
        per_line = np.bincount(np.searchsorted(breaks, quotes))
        suspect.update(np.flatnonzero(per_line % 2).tolist())
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks + 1, [len(block)]))
    return len(breaks), lone_cr, [(int(starts[i]), int(ends[i])) for i in sorted(suspect)]


def _header_lines(block: bytearray, length: int, header: bytes) -> list[tuple[int, int]]:
    found, position = [], block.find(header, 0, length)
    while position != -1:
        end = position + len(header)
        after = bytes(block[end : min(end + 2, length)])
        if (position == 0 or block[position - 1] == NEWLINE) and (
            after[:1] in (b"", b"\n") or after == b"\r\n"
        ):
            found.append((position, end + (2 if after == b"\r\n" else 1 if after[:1] == b"\n" else 0)))
        position = block.find(header, position + 1, length)
    return found


def scan_input(path: Path) -> InputScan:
    """Count the lines and settle the ones a CSV reader would misread (module docstring)."""
    started = time.perf_counter()
    lines = lone_cr = 0
    suspects: dict[int, bytes] = {}  # absolute start -> the line's bytes, its break included
    headers: dict[int, int] = {}  # absolute start -> end
    with path.open("rb") as source:
        first = source.readline()
        header_line = check_header(path, first)
        offset, last_block_end = len(first), b""
        for block, length in _blocks(source):
            breaks, lone, found = _suspect_lines(np.frombuffer(block, np.uint8, count=length))
            lines += breaks + (0 if block[length - 1] == NEWLINE else 1)
            lone_cr += lone
            suspects |= {offset + start: bytes(block[start:end]) for start, end in found}
            headers |= {offset + s: offset + e for s, e in _header_lines(block, length, header_line.encode())}
            offset += length
            last_block_end = bytes(block[max(0, length - 64 * 1024) : length])
    tail = tail_fields = None
    if last_block_end and not last_block_end.endswith(b"\n"):
        tail_bytes = last_block_end.rsplit(b"\n", 1)[-1]
        tail_start = offset - len(tail_bytes)
        tail = tail_bytes.removesuffix(b"\r").decode("utf-8", errors="replace")
        tail_fields = tuple(next(csv.reader([tail]), []))
        if tail_start in headers:
            tail, tail_fields = None, None
        elif tail_start in suspects or len(tail_fields) != len(rules.RAW_COLUMNS):
            suspects[tail_start] = tail_bytes
            tail_fields = None
    ranges, reasons = list(headers.items()), Counter[str]()
    for start, raw in suspects.items():
        if start in headers:
            continue
        text = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", errors="replace")
        reason = classify_line(text, truncated_last_line=tail)
        if reason is None:
            raise AccountingError(f"{path}: a line set aside as malformed is well formed: {text[:200]!r}")
        ranges.append((start, start + len(raw)))
        reasons[reason] += 1
    return InputScan(
        path=path,
        header_line=header_line,
        read=lines - len(headers),
        set_aside=tuple(sorted(ranges)),
        set_aside_reasons=dict(reasons),
        header_repeats=len(headers),
        truncated_last_line=tail,
        truncated_last_fields=tail_fields,
        lone_carriage_returns=lone_cr,
        seconds=round(time.perf_counter() - started, 3),
    )


def peek_input(path: Path, *, tail_bytes: int = 64 * 1024) -> tuple[str, str | None]:
    """The header line (checked) and the unterminated last line's text, if any, reading only
    the first line and the last bytes (as the Spark job's inspect_inputs does)."""
    with path.open("rb") as source:
        header_line = check_header(path, source.readline())
        size = source.seek(0, 2)
        source.seek(max(0, size - tail_bytes))
        tail = source.read()
    if tail.endswith(b"\n") or size == 0:
        return header_line, None
    last = tail.rsplit(b"\n", 1)[-1].removesuffix(b"\r").decode("utf-8", errors="replace")
    return header_line, None if last == header_line else last


def input_for_reader(scan: InputScan, work_dir: Path) -> Path:
    """The file the engine reads: the input itself, or a copy without the set-aside lines."""
    if not scan.set_aside:
        return scan.path
    work_dir.mkdir(parents=True, exist_ok=True)
    copy = work_dir / f"{scan.path.stem}.without_set_aside_lines.csv"
    with scan.path.open("rb") as source, copy.open("wb") as target:
        position = 0
        for start, end in scan.set_aside:
            target.write(source.read(start - position))
            source.seek(end)
            position = end
        while chunk := source.read(BLOCK_BYTES):
            target.write(chunk)
    return copy
