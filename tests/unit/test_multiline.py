"""A record whose quoted field spans lines, read whole (the one joiner both paths use)."""

from __future__ import annotations

import pytest

from retail_pipeline import multiline, rules
from retail_pipeline.multiline import Record, join_records, split_lines, stream_lines

SUB = rules.CSV_SYNTAX.line_break_in_field
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n"
OPENS = '536370,22728,"ALARM CLOCK\r\n'
CLOSES = 'BAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France\r\n'


def records(text: str, **bounds: int) -> list[Record]:
    return list(join_records(split_lines(text), **bounds))


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_a_quoted_field_over_two_lines_is_one_record(line_break: str) -> None:
    text = GOOD + OPENS.replace("\r\n", line_break) + CLOSES + GOOD
    assert records(text) == [
        Record(GOOD),
        Record(f'536370,22728,"ALARM CLOCK{SUB}BAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France\r\n', 2),
        Record(GOOD),
    ]


def test_a_joined_description_is_published_on_one_line() -> None:
    (record,) = records(OPENS + CLOSES)
    fields = rules.split_line(record.text.rstrip("\r\n"))
    assert isinstance(fields, list)
    parsed = rules.parse_record(dict(zip(rules.RAW_COLUMNS, fields, strict=True)))
    assert isinstance(parsed, rules.InvoiceLine)
    assert parsed.description == "ALARM CLOCK BAKELIKE PINK"


def test_a_record_over_three_lines_with_a_comma_in_the_middle_one() -> None:
    text = '536370,22726,"ALARM CLOCK\nBAKELIKE, GREEN\nAND BLUE",24,12/1/2010 8:45,3.75,12583,France\n'
    assert records(text) == [Record(text.replace("\n", SUB, 2), 3)]


def test_a_stray_quote_spoils_its_own_line_only() -> None:
    stray = '536365,85123A,"STRAY,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n'
    text = stray + GOOD * 12 + OPENS + CLOSES
    found = records(text)
    assert [r.lines for r in found] == [1] * 13 + [2]
    assert found[0] == Record(stray)
    assert found[1:13] == [Record(GOOD)] * 12


def test_a_quote_that_closes_beyond_the_bounds_leaves_every_line_as_it_is() -> None:
    text = OPENS + "MORE\r\n" * 3 + CLOSES
    assert [r.lines for r in records(text, max_lines=5)] == [5]
    assert [r.lines for r in records(text, max_lines=4)] == [1] * 5
    assert [r.lines for r in records(text, max_bytes=len(OPENS) + 10)] == [1] * 5


def test_lines_that_close_the_quote_but_make_no_record_are_not_joined() -> None:
    stray = '536365,85123A,"STRAY,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n'
    other = '536366,85123A,ANOTHER" STRAY,6,12/1/2010 8:26,2.55,17850,United Kingdom\r\n'
    assert [r.text for r in records(stray + GOOD + other)] == [stray, GOOD, other]


def test_a_text_cut_inside_a_record_is_not_joined() -> None:
    cut = CLOSES.rstrip("\r\n")
    assert records(OPENS + cut) == [Record(OPENS), Record(cut)]
    assert records(OPENS) == [Record(OPENS)]


def test_lines_stream_in_chunks_with_a_break_split_across_two() -> None:
    chunks = ["ab\r", "\ncd\r", "xy", "z\n", "last"]
    assert list(stream_lines(chunks)) == ["ab\r\n", "cd\r", "xyz\n", "last"]
    assert "".join(stream_lines(chunks)) == "".join(chunks)


def test_a_line_longer_than_the_bound_comes_in_pieces_and_is_never_joined() -> None:
    long_line = '1,"' + "x" * 50 + "\n"
    chunks = [long_line[i : i + 10] for i in range(0, len(long_line), 10)]
    pieces = list(stream_lines([*chunks, CLOSES], max_piece=20))
    assert "".join(pieces) == long_line + CLOSES
    assert all(len(piece) <= 20 for piece in pieces[:-1])
    # Its last piece ends with a break and has an odd number of quotes, but starts no line.
    assert [r.lines for r in join_records(pieces, max_bytes=20)] == [1] * len(pieces)


def test_bytes_of_any_encoding_pass_through_unchanged() -> None:
    raw = 'CAF\xc9,"CR\xc8ME\r\nBR\xdbL\xc9E",\x81\r\n'.encode("latin-1")
    text = raw.decode("latin-1")
    joined = "".join(r.text for r in join_records(split_lines(text), max_lines=3))
    assert joined.encode("latin-1") == raw  # three fields only: no record, nothing joined
    assert multiline.LINE_BREAK.pattern == r"\r\n|\r|\n"


def test_quotes_that_close_over_lines_into_a_misquoted_record_are_not_joined() -> None:
    # Joined, the quoted "ALARM " would be followed by X: no well-quoted record.
    opens = '536370,22728,"ALARM "X" CLOCK\r\n'
    assert records(opens + CLOSES + GOOD) == [Record(opens), Record(CLOSES), Record(GOOD)]
    assert rules.split_line(opens.rstrip("\r\n")) == "unclosed_quote"
