"""The synthetic Online Retail generator: shape, realism, determinism, atomic output."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from retail_pipeline_dev import synthetic

SCALE = 0.015  # 8,129 rows: a few hundred invoices, well under a second
SEED = 42
HEADER_LINE = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
# M/d/yyyy H:mm without zero padding, as in the real export ("12/1/2010 8:26").
DATE_SHAPE = re.compile(r"(?:[1-9]|1[0-2])/(?:[1-9]|[12]\d|3[01])/\d{4} (?:\d|1\d|2[0-3]):[0-5]\d")


@dataclass(frozen=True)
class Generated:
    summary: synthetic.GenerationSummary
    raw: bytes
    rows: list[list[str]]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    path = tmp_path_factory.mktemp("synthetic") / "retail.csv"
    summary = synthetic.generate(path, scale=SCALE, seed=SEED)
    raw = path.read_bytes()
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == list(synthetic.HEADER)
    return Generated(summary, raw, rows[1:])


def invoices(rows: list[list[str]]) -> Iterator[list[list[str]]]:
    """Runs of consecutive lines with the same InvoiceNo."""
    run: list[list[str]] = []
    for row in rows:
        if run and row[0] != run[0][0]:
            yield run
            run = []
        run.append(row)
    if run:
        yield run


def test_row_count_is_exact(generated: Generated, tmp_path: Path) -> None:
    expected = round(SCALE * synthetic.FULL_ROWS)
    assert len(generated.rows) == expected == generated.summary.rows
    # A tiny scale must also stop exactly, cutting its last invoice if needed.
    small = synthetic.generate(tmp_path / "small.csv", scale=0.0007, seed=SEED)
    data_lines = small.path.read_bytes().count(b"\r\n") - 1
    assert data_lines == small.rows == round(0.0007 * synthetic.FULL_ROWS) == 379


def test_header_bom_and_crlf_line_endings(generated: Generated) -> None:
    raw = generated.raw
    assert raw.startswith(b"\xef\xbb\xbf" + HEADER_LINE.encode() + b"\r\n")
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == len(generated.rows) + 1
    assert generated.summary.bytes == len(raw)


def test_every_row_parses_into_eight_typed_fields(generated: Generated) -> None:
    for row in generated.rows:
        assert len(row) == 8, row
        invoice, code, _, quantity, _, price, customer, country = row
        assert re.fullmatch(r"[CA]?\d{6}", invoice), row
        assert code and country, row
        int(quantity)
        # Prices are written like the real export: at most two decimals, "2.1" not "2.10".
        assert re.fullmatch(r"-?(0|[1-9]\d*)(\.\d?[1-9])?", price), row
        assert customer == "" or 12_346 <= int(customer) <= 18_287, row


def test_dates_have_the_export_shape_increase_and_span_the_year(generated: Generated) -> None:
    stamps = [row[4] for row in generated.rows]
    bad = [s for s in stamps if not DATE_SHAPE.fullmatch(s)]
    assert not bad, bad[:5]
    parsed = [dt.datetime.strptime(s, "%m/%d/%Y %H:%M") for s in stamps]
    assert all(a <= b for a, b in itertools.pairwise(parsed)), "dates must not decrease"
    assert (parsed[0].year, parsed[0].month) == (2010, 12)
    assert (parsed[-1].year, parsed[-1].month) == (2011, 12)
    assert parsed[0].date() >= dt.date(2010, 12, 1)
    assert parsed[-1].date() <= dt.date(2011, 12, 9)
    months = {(p.year, p.month) for p in parsed}
    assert months == {(2010, 12)} | {(2011, m) for m in range(1, 13)}
    assert all(6 <= p.hour <= 20 for p in parsed)


def test_cancellation_rows_share_and_sign(generated: Generated) -> None:
    cancelled = [row for row in generated.rows if row[0].startswith("C")]
    share = len(cancelled) / len(generated.rows)
    assert 0.010 <= share <= 0.025, share
    assert all(int(row[3]) < 0 for row in cancelled)
    assert generated.summary.cancellation_rows == len(cancelled)


def test_empty_customer_share(generated: Generated) -> None:
    empty = sum(1 for row in generated.rows if row[6] == "")
    assert 0.20 <= empty / len(generated.rows) <= 0.30, empty / len(generated.rows)
    assert generated.summary.empty_customer_rows == empty


def test_descriptions_with_commas_are_quoted(generated: Generated) -> None:
    lines = generated.raw.decode("utf-8-sig").split("\r\n")[1:-1]
    quoted = [line for line in lines if re.search(r',"[^"]*,[^"]*",', line)]
    assert quoted, "expected some quoted descriptions containing a comma"
    for line in quoted[:50]:
        (row,) = csv.reader([line])
        assert len(row) == 8 and "," in row[2], line


def test_lines_of_an_invoice_share_date_customer_and_country(generated: Generated) -> None:
    runs = list(invoices(generated.rows))
    numbers = [run[0][0] for run in runs]
    assert len(set(numbers)) == len(numbers), "an invoice's lines must be consecutive"
    assert numbers[0] == "536365"
    digits = [int(n.lstrip("CA")) for n in numbers]
    assert all(a < b for a, b in itertools.pairwise(digits)), "invoice numbers must increase"
    for run in runs:
        assert len({(row[4], row[6], row[7]) for row in run}) == 1, run[:3]
    assert generated.summary.invoices == len(runs)
    assert max(len(run) for run in runs) > 3 * len(generated.rows) / len(runs), "no long tail"


def test_customers_keep_one_country(generated: Generated) -> None:
    countries: dict[str, set[str]] = {}
    for row in generated.rows:
        if row[6]:
            countries.setdefault(row[6], set()).add(row[7])
    assert all(len(found) == 1 for found in countries.values())
    uk = sum(1 for row in generated.rows if row[7] == "United Kingdom") / len(generated.rows)
    assert 0.85 <= uk <= 0.96, uk


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = synthetic.generate(tmp_path / "a.csv", scale=0.005, seed=7)
    again = synthetic.generate(tmp_path / "b.csv", scale=0.005, seed=7)
    other = synthetic.generate(tmp_path / "c.csv", scale=0.005, seed=8)
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.path.read_bytes() != other.path.read_bytes()
    assert first.rows == other.rows


def test_partial_file_is_renamed_into_place_and_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "retail.csv"
    summary = synthetic.generate(target, scale=0.002, seed=SEED)
    assert summary.path == target and target.is_file()
    assert not list(target.parent.glob("*.partial"))
    assert synthetic.meta_path(target).is_file()


def test_failed_run_leaves_neither_partial_nor_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "retail.csv"
    partial_seen: list[bool] = []
    real_next = synthetic._InvoiceFactory.next_invoice

    def failing_next(self: synthetic._InvoiceFactory, written: int) -> synthetic._Invoice:
        if written > 1_000:
            partial_seen.append(Path(f"{target}.partial").exists() and not target.exists())
            raise RuntimeError("disk on fire")
        return real_next(self, written)

    monkeypatch.setattr(synthetic._InvoiceFactory, "next_invoice", failing_next)
    with pytest.raises(RuntimeError, match="disk on fire"):
        synthetic.generate(target, scale=0.01, seed=SEED)
    assert partial_seen == [True], "rows must go to the .partial file while running"
    assert list(tmp_path.iterdir()) == []


def test_bad_debt_lines_follow_the_real_pattern() -> None:
    schedule = synthetic._bad_debt_schedule(synthetic.FULL_ROWS, 1.0)
    assert [price for _, price in reversed(schedule)] == [11_062.06, -11_062.06, -11_062.06]
    assert synthetic._bad_debt_schedule(5_419, 0.01) == []
    invoice = synthetic._bad_debt_invoice("A563185", "8/12/2011 14:50", 11_062.06)
    assert invoice.lines == [
        ("A563185", "B", "Adjust bad debt", 1, "8/12/2011 14:50", "11062.06", "", "United Kingdom")
    ]


def test_scale_must_be_positive(tmp_path: Path) -> None:
    for scale in (0.0, -1.0, float("nan"), 1e-9):
        with pytest.raises(ValueError):
            synthetic.generate(tmp_path / "x.csv", scale=scale)
    assert list(tmp_path.iterdir()) == []


def test_main_skips_a_current_file_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.csv"
    argv = ["--scale", "0.002", "--seed", "5", "--output", str(output)]
    assert synthetic.main(argv) == 0
    assert "1,084 rows" in capsys.readouterr().out
    # Each generation renames a new file into place, so the inode tells rewrites apart.
    inode = output.stat().st_ino

    assert synthetic.main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert output.stat().st_ino == inode

    assert synthetic.main([*argv, "--force"]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert output.stat().st_ino != inode
    inode = output.stat().st_ino

    # Another seed makes the recorded file stale.
    assert synthetic.main(["--scale", "0.002", "--seed", "6", "--output", str(output)]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert output.stat().st_ino != inode


def test_default_output_name() -> None:
    assert synthetic.default_output(10.0) == Path("data/synthetic/online_retail_scale_10.csv")
    assert synthetic.default_output(0.5) == Path("data/synthetic/online_retail_scale_0.5.csv")
