"""Compressed inputs are decompressed in bounded pieces, whatever their compression ratio."""

from __future__ import annotations

import bz2
import gzip

import pytest

from retail_pipeline import inputs
from retail_pipeline.inputs import READ_CHUNK, decompressed


def pieces(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_highly_compressed_file_comes_out_in_pieces_of_at_most_a_read_chunk(suffix, compress) -> None:
    text = b"536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom\n" * 200_000
    bomb = b"\n" * (40 * READ_CHUNK)  # 40 MiB of line breaks: a few KB compressed
    packed = compress(text) + compress(bomb)  # two members, as concatenated files are
    assert len(packed) < READ_CHUNK

    out = list(decompressed(pieces(packed), suffix))

    assert max(len(piece) for piece in out) <= READ_CHUNK
    assert b"".join(out) == text + bomb


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_file_cut_short_is_named_as_such(suffix, compress) -> None:
    packed = compress(b"a line\n" * 100_000)
    with pytest.raises(inputs.EndsEarlyError):  # text_chunks says it as an InputError
        list(decompressed(pieces(packed[: len(packed) // 2]), suffix))
