"""A CSV record whose quoted field holds line breaks, read whole: one function for both paths.

Valid CSV may break a quoted field across lines ("ALARM CLOCK<CR><LF>BAKELIKE RED"). Line
readers (Hadoop's, the body parser's) split it, and each fragment would be quarantined.
`join_records` puts such a record back together: a line with an odd number of quotes (the
rules' `unclosed_quote`) is joined with the lines after it until the record's quotes are even
again, as a CSV reader closes the field, if the lines then make one well-formed record of
`rules.CSV_SYNTAX.field_count` fields with well-formed quoting (`rules.well_quoted`: each
quote opens or closes a field, or is doubled inside one). Each line break inside the record
becomes `rules.CSV_SYNTAX.line_break_in_field`, so the record is one line that the rules then
judge like any other (in Description the break becomes one space).

Bounded: a record spans at most `limits.RECORD_MAX_LINES` lines and `limits.RECORD_MAX_BYTES`;
a quote still open beyond that, or at a text's unterminated end, is a stray quote: its line
stays as it is (`unclosed_quote`) and reading goes on with the next line, so one stray quote
never swallows the rest of a file. Memory is one pending record.

The batch job (`batch.join_multiline_files`) feeds it a file's bytes decoded as Latin-1 (one
character a byte, so quotes and line breaks are found in any supported encoding, UTF-8
included, and other bytes pass through untouched); the streaming path (`stream.body`) feeds it
a request body's text. No Spark here.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from retail_pipeline import limits, rules

# Where Hadoop's line reader ends a line.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A line and the break that ends it (none at the text's end).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
_QUOTE = rules.CSV_SYNTAX.quote


@dataclass(frozen=True)
class Record:
    """One record: its text (its own final line break kept) and the lines it spans."""

    text: str
    lines: int = 1


def join_records(
    lines: Iterable[str],
    *,
    max_lines: int = limits.RECORD_MAX_LINES,
    max_bytes: int = limits.RECORD_MAX_BYTES,
    size: Callable[[str], int] = len,
) -> Iterator[Record]:
    """The records of `lines`, each given with its line break (a piece without one is a
    text's unterminated end, or part of a line longer than `max_bytes`: never joined).
    `size` measures a line in bytes (`len` for text decoded as Latin-1)."""
    pending: deque[tuple[str, bool]] = deque()  # (piece, whether it starts a line)
    starts_line = True
    for piece in lines:
        pending.append((piece, starts_line))
        starts_line = piece.endswith(("\n", "\r"))
        while pending:
            taken = _first_record(pending, max_lines=max_lines, max_bytes=max_bytes, size=size)
            if taken is None:
                break
            yield _joined([pending.popleft()[0] for _ in range(taken)])
    while pending:
        taken = _first_record(pending, max_lines=max_lines, max_bytes=max_bytes, size=size, at_end=True)
        yield _joined([pending.popleft()[0] for _ in range(taken or 1)])


def _first_record(
    pending: deque[tuple[str, bool]],
    *,
    max_lines: int,
    max_bytes: int,
    size: Callable[[str], int],
    at_end: bool = False,
) -> int | None:
    """How many pending pieces the first record takes, or None until more lines arrive."""
    first, starts_line = pending[0]
    if not (starts_line and _ends_line(first) and first.count(_QUOTE) % 2 == 1):
        return 1
    quotes, used = first.count(_QUOTE), size(first)
    for taken, (piece, _) in enumerate(list(pending)[1:], start=2):
        used += size(piece)
        if taken > max_lines or used > max_bytes:
            return 1
        quotes += piece.count(_QUOTE)
        if quotes % 2 == 0:
            # The closing line must end with a break too (a text cut inside a record is no
            # record), and the lines must make one record: a stray quote and the next line
            # with an odd number of quotes rarely do.
            whole = _ends_line(piece) and _is_one_record(_joined([p for p, _ in list(pending)[:taken]]))
            return taken if whole else 1
        if not _ends_line(piece):
            return 1
    return 1 if at_end or len(pending) >= max_lines else None


def _is_one_record(record: Record) -> bool:
    fields = rules.csv_fields(LINE_BREAK.sub("", record.text))
    return fields is not None and len(fields) == rules.CSV_SYNTAX.field_count


def _ends_line(piece: str) -> bool:
    return piece.endswith(("\n", "\r"))


def _joined(pieces: list[str]) -> Record:
    if len(pieces) == 1:
        return Record(pieces[0])
    inner = [LINE_BREAK.sub(rules.CSV_SYNTAX.line_break_in_field, piece) for piece in pieces[:-1]]
    return Record("".join(inner) + pieces[-1], len(pieces))


def split_lines(text: str) -> Iterator[str]:
    """The lines of a text, each with its line break (the last one may have none)."""
    end = 0
    for match in _LINE.finditer(text):
        end = match.end()
        yield match.group()
    if end < len(text):
        yield text[end:]


def stream_lines(chunks: Iterable[str], *, max_piece: int = limits.RECORD_MAX_BYTES) -> Iterator[str]:
    """The lines of a text that arrives in chunks, each with its break, in bounded memory: a
    line longer than `max_piece` comes in pieces of at most that (the last with the break)."""
    rest = ""
    for chunk in chunks:
        text = rest + chunk
        # A final \r may be the first half of \r\n: wait for the next chunk.
        cut = len(text) - 1 if text.endswith("\r") else len(text)
        end = 0
        for match in _LINE.finditer(text, 0, cut):
            end = match.end()
            yield match.group()
        rest = text[end:]
        while len(rest) > max_piece:
            yield rest[:max_piece]
            rest = rest[max_piece:]
    if rest:
        yield from split_lines(rest)
