"""Finding the input files and checking what Spark's line reader cannot see.

Before any row is read, the driver resolves the input (a file, a folder or a glob) to files
and peeks at each one's first and last bytes: the header must name the data set's columns in
order (otherwise every row would be read into the wrong column, silently), and a last line
without a line break is remembered, because a file cut inside its last field still parses.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from retail_pipeline import rules
from retail_pipeline.ledger import Ledger
from retail_pipeline.multiline import LINE_BREAK
from retail_pipeline.storage import FileInfo, HadoopFileSystem

logger = logging.getLogger(__name__)

PEEK_BYTES = 64 * 1024
UTF8_BOM = rules.UTF8_BOM


class InputError(ValueError):
    """The input cannot be read as the data set; the message says which file and why."""


@dataclass(frozen=True)
class InputFile:
    path: str
    uri: str  # the source's identity, as the curated source_file column spells it
    size: int
    modified: int  # ms since the epoch
    # The first line exactly as Spark's line reader returns it (byte-order mark removed);
    # "" for an empty file, which is a source with no lines.
    header_line: str
    # The last line's text when the file does not end with a line break, else None.
    unterminated_last_line: str | None
    checksum: str | None = None

    @property
    def empty(self) -> bool:
        return self.size == 0


# Encodings a line reader can split on b"\n" (one byte per ASCII character), by Python's
# codec name, with the JVM's name for Spark's decode().
JVM_CHARSETS = {
    "utf-8": "UTF-8",
    "iso8859-1": "ISO-8859-1",
    "iso8859-15": "ISO-8859-15",
    "cp1252": "windows-1252",
    "ascii": "US-ASCII",
}


def check_encoding(encoding: str) -> str:
    """The Python codec name of a supported input encoding; InputError otherwise."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = ""
    if name not in JVM_CHARSETS:
        supported = "utf-8, latin-1, iso8859-15, cp1252, ascii"
        raise InputError(f"unsupported text encoding {encoding!r} (supported: {supported})")
    return name


def jvm_charset(encoding: str) -> str:
    return JVM_CHARSETS[check_encoding(encoding)]


@dataclass(frozen=True)
class Intake:
    """The files a run processes, each inspected, and those it skips as already processed."""

    inputs: list[InputFile]
    skipped: list[FileInfo]


def select_inputs(
    fs: HadoopFileSystem, pattern: str, ledger: Ledger, *, incremental: bool, encoding: str
) -> Intake:
    """Every file the pattern matches or, `incremental`, those the ledger has not seen as they
    are now (new, or changed in size, modification time and content); InputError when none
    matches."""
    codec = check_encoding(encoding)
    try:
        found = fs.glob_files(pattern)
    except Exception as error:  # py4j wraps the JVM's IOException; say what it was about
        raise InputError(f"cannot list input {pattern!r}: {error}") from error
    if not found:
        raise InputError(f"no input files match {pattern!r}")
    skipped = [info for info in found if incremental and _seen(fs, ledger, info)]
    chosen = [info for info in found if info not in skipped]
    for info in skipped:
        logger.info("Skipping %s: processed before, unchanged", info.path)
    return Intake([_inspect_file(fs, info, codec) for info in chosen], skipped)


def _seen(fs: HadoopFileSystem, ledger: Ledger, info: FileInfo) -> bool:
    entry = ledger.sources.get(info.uri)
    if entry is None:
        return False
    if entry.size == info.size and entry.modified == info.modified:
        return True
    # Touched but maybe not changed (re-delivered as it was): compare the content.
    return entry.size == info.size and entry.checksum is not None and entry.checksum == fs.checksum(info.path)


def _inspect_file(fs: HadoopFileSystem, info: FileInfo, codec: str) -> InputFile:
    path = info.path
    checksum = fs.checksum(path)
    if info.size == 0:
        logger.warning("Input %s is empty (0 bytes): it holds no lines", path)
        return InputFile(path, info.uri, 0, info.modified, "", None, checksum)
    head, tail = peek(fs, info)
    _check_encoding_of(path, head, codec)
    header_line = LINE_BREAK.split(head.decode(codec, errors="replace"), maxsplit=1)[0]
    header_line = header_line.removeprefix(UTF8_BOM)
    columns = tuple(field.strip() for field in next(csv.reader([header_line]), []))
    if columns != rules.RAW_COLUMNS:
        raise InputError(
            f"{path}: the first line should be the header {rules.RAW_HEADER!r} but is {header_line[:200]!r}"
        )
    unterminated = None
    if not tail.endswith((b"\n", b"\r")):
        last = LINE_BREAK.split(tail.decode(codec, errors="replace"))[-1]
        unterminated = last.removeprefix(UTF8_BOM)
        logger.warning("Input %s does not end with a line break: its last line may be cut short", path)
    return InputFile(path, info.uri, info.size, info.modified, header_line, unterminated, checksum)


# Compressed inputs Spark's text source reads (by extension, as Hadoop picks the codec).
DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    ".gz": lambda: zlib.decompressobj(wbits=zlib.MAX_WBITS | 32),
    ".bz2": bz2.BZ2Decompressor,
}
UNSUPPORTED_COMPRESSION = (".zip", ".zst", ".lz4", ".snappy", ".deflate", ".xz", ".7z")
READ_CHUNK = 1024 * 1024


def peek(fs: HadoopFileSystem, info: FileInfo) -> tuple[bytes, bytes]:
    """The first and last PEEK_BYTES of a file's text: read in place, or decompressed as a
    stream for .gz and .bz2 (which have no random access: the whole file passes through)."""
    if compression(info.path) is None:
        return fs.read_bytes(info.path, length=PEEK_BYTES), fs.read_bytes(info.path, start=-PEEK_BYTES)
    head, tail = b"", b""
    for text in text_chunks(fs, info.path, info.size):
        head = head if len(head) >= PEEK_BYTES else (head + text)[:PEEK_BYTES]
        tail = (tail + text)[-PEEK_BYTES:]
    return head, tail


def compression(path: str) -> str | None:
    """The file's compression suffix (.gz, .bz2), None for plain text; InputError for a
    codec Spark's text source does not read."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in UNSUPPORTED_COMPRESSION:
        raise InputError(
            f"{path}: {suffix} files are not read (supported: plain text, .gz, .bz2);"
            " decompress it or re-deliver it as .gz"
        )
    return suffix if suffix in DECOMPRESSORS else None


def text_chunks(fs: HadoopFileSystem, path: str, size: int) -> Iterator[bytes]:
    """A file's text (its bytes, decompressed for .gz and .bz2) in chunks of at most
    READ_CHUNK bytes, in bounded memory (a highly compressed file too)."""
    suffix = compression(path)
    compressed = (fs.read_bytes(path, start=start, length=READ_CHUNK) for start in range(0, size, READ_CHUNK))
    if suffix is None:
        yield from compressed
        return
    try:
        yield from decompressed(compressed, suffix)
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise InputError(f"{path}: not a valid {suffix} file ({error}): re-deliver it") from None
    except EndsEarlyError:
        raise InputError(f"{path}: the {suffix} file ends early (cut short?): re-deliver it") from None


class EndsEarlyError(Exception):
    """The compressed stream ended inside a member."""


def decompressed(chunks: Iterable[bytes], suffix: str) -> Iterator[bytes]:
    """The decompressed text of `chunks` of a .gz or .bz2 file, at most READ_CHUNK bytes at
    a time. A file of several members (concatenated .gz or .bz2) restarts after each."""
    decompressor = DECOMPRESSORS[suffix]()
    for chunk in chunks:
        data = chunk
        while data:
            yield from _drain(decompressor, data)
            data = decompressor.unused_data if decompressor.eof else b""
            if data:
                decompressor = DECOMPRESSORS[suffix]()
    if not decompressor.eof:
        raise EndsEarlyError


def _drain(decompressor: Any, data: bytes) -> Iterator[bytes]:
    """All the output of `data`, READ_CHUNK bytes at most per piece: zlib keeps the input it
    has not used in unconsumed_tail, bz2 keeps it inside (needs_input False)."""
    text = decompressor.decompress(data, READ_CHUNK)
    while True:
        if text:
            yield text
        if decompressor.eof:
            return
        tail = getattr(decompressor, "unconsumed_tail", None)
        if tail is not None:  # zlib: more output while input is left or the buffer was full
            if not tail and len(text) < READ_CHUNK:
                return
            text = decompressor.decompress(tail, READ_CHUNK)
        elif decompressor.needs_input:  # bz2
            return
        else:
            text = decompressor.decompress(b"", READ_CHUNK)


def _check_encoding_of(path: str, head: bytes, codec: str) -> None:
    """Stop on a file that is mostly not in the configured encoding (a Latin-1 export read as
    UTF-8: most lines with non-ASCII bytes fail, and more than one), naming an encoding that
    reads it; a stray bad line is quarantined instead (invalid_encoding)."""
    lines = [line for line in head.split(b"\n")[:-1] if not line.isascii()]
    bad = [line for line in lines if not _decodes(line, codec)]
    if len(bad) < 2 or len(bad) * 2 < len(lines):
        return
    fits = next(
        (name for name in ("utf-8", "cp1252", "iso8859-15") if all(_decodes(b, name) for b in lines)), None
    )
    hint = f"; it reads as {fits}: set batch.encoding: {fits}" if fits else ""
    raise InputError(
        f"{path}: not {codec} text: {len(bad)} of the first {len(lines)} lines with non-ASCII bytes"
        f" do not decode, e.g. {bad[0][:80]!r}{hint}"
    )


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True
