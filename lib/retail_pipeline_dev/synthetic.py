"""Realistic synthetic input for the UCI "Online Retail" pipeline.

The full data set (541,909 rows) cannot be downloaded on the build machines, so
full-size and larger inputs are generated from the committed 9,999-row sample:
the product catalogue and quantity mix come from the sample, the calendar,
country mix and quirk rates from the published full-set figures
(data/raw/PROVENANCE.md).

The output has the exact shape of the common CSV export (UTF-8 with BOM, CRLF,
``M/d/yyyy H:mm`` dates, empty CustomerID when unknown) and is streamed to disk
one invoice at a time, so memory stays constant whatever the scale.  The same
seed, scale and sample always give a byte-identical file.

Usage::

    python -m retail_pipeline_dev.synthetic --scale 10 --seed 42
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from retail_pipeline.rules import RAW_COLUMNS

logger = logging.getLogger(__name__)

FULL_ROWS = 541_909
HEADER = RAW_COLUMNS
DEFAULT_SAMPLE_PATH = Path(__file__).resolve().parents[2] / "data" / "raw" / "online_retail_first_9999.csv"
DEFAULT_OUTPUT_DIR = Path("data") / "synthetic"

# Bump whenever the output for a given (scale, seed, sample) changes, so that
# cached files recorded in a .meta.json sidecar are regenerated.
GENERATOR_VERSION = 1

FIRST_INVOICE = 536_365
UK = "United Kingdom"
Row = tuple[str, str, str, int, str, str, str, str]

# --- calendar: full-set rows per month/hour/weekday shape the timestamps -----
FIRST_DAY = dt.date(2010, 12, 1)
LAST_DAY = dt.date(2011, 12, 9)
_MONTH_ROWS = {
    (2010, 12): 42_481,
    (2011, 1): 35_147,
    (2011, 2): 27_707,
    (2011, 3): 36_748,
    (2011, 4): 29_916,
    (2011, 5): 37_030,
    (2011, 6): 36_874,
    (2011, 7): 39_518,
    (2011, 8): 35_284,
    (2011, 9): 50_226,
    (2011, 10): 60_742,
    (2011, 11): 84_711,
    (2011, 12): 25_525,
}
_HOUR_ROWS = {
    6: 41,
    7: 383,
    8: 8_909,
    9: 34_332,
    10: 49_037,
    11: 57_674,
    12: 78_709,
    13: 72_259,
    14: 67_471,
    15: 77_519,
    16: 54_516,
    17: 28_509,
    18: 7_974,
    19: 3_705,
    20: 871,
}
# Monday..Sunday; the shop never trades on Saturdays.
_WEEKDAY_ROWS = (95_111, 101_808, 94_565, 103_857, 82_193, 0, 64_375)
_CLOSED_DAYS = frozenset(
    [dt.date(2010, 12, 24) + dt.timedelta(days=i) for i in range(11)]  # to Jan 3
    + [
        dt.date(2011, 4, 22),
        dt.date(2011, 4, 25),
        dt.date(2011, 4, 29),
        dt.date(2011, 5, 2),
        dt.date(2011, 5, 30),
        dt.date(2011, 8, 29),
    ]
)

# --- customers and countries -------------------------------------------------
CUSTOMER_ID_MIN = 12_346
CUSTOMER_ID_MAX = 18_287
CUSTOMER_COUNT = 4_372
FOREIGN_CUSTOMERS = 422  # the full set has 3,950 UK customers of 4,372
UK_CUSTOMER_ROWS = 361_878  # UK rows with a CustomerID, weighed against _FOREIGN_ROWS
GUEST_UK_SHARE = 0.99
# Rare countries (Saudi Arabia: 10 rows) still get a handful of invoices per
# full-size set, so all 38 countries appear from scale 1 on.
MIN_COUNTRY_ROWS = 150
# Non-UK countries of the full set with their row counts (relative weights).
_FOREIGN_ROWS = {
    "Germany": 9_495,
    "France": 8_557,
    "EIRE": 8_196,
    "Spain": 2_533,
    "Netherlands": 2_371,
    "Belgium": 2_069,
    "Switzerland": 2_002,
    "Portugal": 1_519,
    "Australia": 1_259,
    "Norway": 1_086,
    "Italy": 803,
    "Channel Islands": 758,
    "Finland": 695,
    "Cyprus": 622,
    "Sweden": 462,
    "Unspecified": 446,
    "Austria": 401,
    "Denmark": 389,
    "Japan": 358,
    "Poland": 341,
    "Israel": 297,
    "USA": 291,
    "Hong Kong": 288,
    "Singapore": 229,
    "Iceland": 182,
    "Canada": 151,
    "Greece": 146,
    "Malta": 127,
    "United Arab Emirates": 68,
    "European Community": 61,
    "RSA": 58,
    "Lebanon": 45,
    "Lithuania": 35,
    "Brazil": 32,
    "Czech Republic": 30,
    "Bahrain": 19,
    "Saudi Arabia": 10,
}

# --- invoice mix -------------------------------------------------------------
MAX_LINES_PER_INVOICE = 1_100  # the largest real invoice has 1,114 lines
CANCEL_EMPTY_CUSTOMER = 0.04  # share of cancellations without a customer
CANCEL_DISCOUNT = 0.04  # one-line cancellations that reverse a discount ("D")
DUPLICATE_LINE = 0.005  # per line; with chance repeats gives ~1% duplicate rows
REPEAT_REDRAW = 0.6
MANUAL_LINE = 0.001
FOREIGN_POSTAGE = 0.55
GUEST_DOTCOM_POSTAGE = 0.7
BAD_DEBT_PER_FULL_SET = 3
BAD_DEBT_PRICE = 11_062.06
# Notes the warehouse typed into Description for stock adjustments.
_ADJUST_NOTES = (
    "damaged",
    "Damaged",
    "check",
    "?",
    "wet damaged",
    "thrown away",
    "lost",
    "missing",
    "smashed",
    "sold as set on dotcom",
    "Unsaleable, destroyed.",
    "damages/display",
    "found",
    "adjustment",
    "wrongly marked",
)
ADJUST_NOTE_SHARE = 0.15
# Invoice numbers are not dense in the real set (25,900 invoices over ~45,000
# numbers): steps of 1-4 reproduce that and end near 581587 at scale 1.
_INVOICE_STEPS = (1, 2, 3, 4)
_INVOICE_STEP_WEIGHTS = (45, 40, 10, 5)


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """What one :func:`generate` call wrote."""

    path: Path
    rows: int
    invoices: int
    cancellation_rows: int
    empty_customer_rows: int
    bytes: int
    seconds: float
    scale: float
    seed: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    @property
    def lines_per_invoice(self) -> float:
        return self.rows / self.invoices if self.invoices else 0.0

    def describe(self) -> str:
        return (
            f"{self.path}: {self.rows:,} rows, {self.invoices:,} invoices "
            f"({self.lines_per_invoice:.1f} lines/invoice), "
            f"{self.cancellation_rows / self.rows:.2%} cancellation rows, "
            f"{self.empty_customer_rows / self.rows:.2%} empty CustomerID, "
            f"{self.bytes / 1e6:,.1f} MB in {self.seconds:.1f}s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )


class _Table:
    """A discrete distribution sampled by bisection over cumulative weights."""

    __slots__ = ("cum", "last", "total", "values")

    def __init__(self, values: Sequence[Any], weights: Sequence[float]) -> None:
        if not values or len(values) != len(weights):
            raise ValueError("a distribution needs values with matching weights")
        self.values = list(values)
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1]
        self.last = len(self.cum) - 1

    def draw(self, rng: random.Random) -> Any:
        # hi=last guards against random() * total rounding up to the total.
        return self.values[bisect.bisect(self.cum, rng.random() * self.total, 0, self.last)]

    def mean(self) -> float:
        probabilities = (b - a for a, b in itertools.pairwise([0.0, *self.cum]))
        return sum(v * p for v, p in zip(self.values, probabilities, strict=True)) / self.total


class _Product(NamedTuple):
    code: str
    description: str
    price: str  # kept as the sample spells it ("2.1", "165")
    quantities: _Table


@dataclass(frozen=True, slots=True)
class _Catalogue:
    products: list[_Product]
    cum_weights: list[float]
    customers: dict[str, str]  # sample CustomerID -> Country
    digest: str  # sha256 of the sample, recorded in the sidecar


def _read_sample(sample_path: Path) -> tuple[list[list[str]], str]:
    raw = sample_path.read_bytes()
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(rows[0]) != HEADER:
        raise ValueError(f"{sample_path} does not start with the Online Retail header")
    return [r for r in rows[1:] if len(r) == len(HEADER)], hashlib.sha256(raw).hexdigest()


def _is_product(code: str) -> bool:
    # Real products have numeric codes ("85123A"); POST, DOT, M, D, C2, B ...
    # are service lines that the generator adds on purpose instead.
    return code[:1].isdigit()


def _load_catalogue(sample_path: Path) -> _Catalogue:
    rows, digest = _read_sample(sample_path)
    descriptions: dict[str, Counter[str]] = defaultdict(Counter)
    prices: dict[str, Counter[str]] = defaultdict(Counter)
    popularity: Counter[str] = Counter()
    quantities: tuple[Counter[int], Counter[int]] = (Counter(), Counter())
    customers: dict[str, str] = {}
    for invoice, code, desc, qty, _, price, customer, country in rows:
        if customer:
            customers.setdefault(customer, country)
        if not _is_product(code) or invoice.startswith("C") or float(price) <= 0:
            continue
        popularity[code] += 1
        prices[code][price] += 1
        if desc:
            descriptions[code][desc] += 1
        if int(qty) > 0:
            quantities[float(price) >= 10][int(qty)] += 1
    tables = [_Table(list(c), list(c.values())) for c in quantities]
    products: list[_Product] = []
    for code, _count in popularity.most_common():  # ties keep file order
        if descriptions[code]:
            price = prices[code].most_common(1)[0][0]
            desc = descriptions[code].most_common(1)[0][0]
            products.append(_Product(code, desc, price, tables[float(price) >= 10]))
    if not products:
        raise ValueError(f"{sample_path} holds no usable product rows")
    # Zipf-like popularity over the sample's frequency ranks: the top product
    # gets ~0.5% of lines and the tail stays populated, as in the full set.
    weights = [1.0 / (rank + 50) for rank in range(len(products))]
    return _Catalogue(products, list(itertools.accumulate(weights)), customers, digest)


class _Calendar:
    """Maps a position in the file (0..1) to a monotonic business-hours stamp.

    Each (trading day, hour) bucket gets a share of rows proportional to the full
    set's month, weekday and hour profile.  Invoices are stamped by the row they
    start at, so as long as no invoice is longer than the shortest month's
    share (Dec 2011: 4.7% of rows, see _KindMix) every month appears.
    """

    def __init__(self) -> None:
        month_days: dict[tuple[int, int], list[dt.date]] = defaultdict(list)
        day = FIRST_DAY
        while day <= LAST_DAY:
            if _WEEKDAY_ROWS[day.weekday()] and day not in _CLOSED_DAYS:
                month_days[(day.year, day.month)].append(day)
            day += dt.timedelta(days=1)
        hour_total = sum(_HOUR_ROWS.values())
        weights: list[float] = []
        self._labels: list[tuple[str, int]] = []
        for month, days in month_days.items():
            day_total = sum(_WEEKDAY_ROWS[d.weekday()] for d in days)
            for d in days:
                day_rows = _MONTH_ROWS[month] * _WEEKDAY_ROWS[d.weekday()] / day_total
                prefix = f"{d.month}/{d.day}/{d.year} "
                for hour, hour_rows in _HOUR_ROWS.items():
                    weights.append(day_rows * hour_rows / hour_total)
                    self._labels.append((prefix, hour))
        self._weights = weights
        self._cum = list(itertools.accumulate(weights))
        self._last = len(self._cum) - 1

    def stamp(self, position: float) -> str:
        x = position * self._cum[-1]
        i = bisect.bisect(self._cum, x, 0, self._last)
        start = self._cum[i - 1] if i else 0.0
        minute = min(59, int((x - start) / self._weights[i] * 60))
        prefix, hour = self._labels[i]
        return f"{prefix}{hour}:{minute:02d}"


class _Customers:
    """A fixed pool of customers, each with one country and a skewed activity.

    The country is drawn first, by the full set's rows per country, so the
    country mix of the rows is right at any scale; then a customer of that
    country, a few of whom order far more often than the rest.
    """

    def __init__(self, rng: random.Random, known: dict[str, str]) -> None:
        by_country: dict[str, list[str]] = defaultdict(list)
        for cid, country in known.items():
            by_country[country].append(cid)
        taken = set(known)
        fresh = [str(i) for i in range(CUSTOMER_ID_MIN, CUSTOMER_ID_MAX + 1) if str(i) not in taken]
        # pop() takes from the end: the real extremes first, then random ids.
        fresh = [*rng.sample(fresh[1:-1], len(fresh) - 2), fresh[-1], fresh[0]]
        foreign_total = sum(_FOREIGN_ROWS.values())
        for country, rows in _FOREIGN_ROWS.items():
            wanted = max(1, round(FOREIGN_CUSTOMERS * rows / foreign_total))
            while len(by_country[country]) < wanted:
                by_country[country].append(fresh.pop())
        while sum(map(len, by_country.values())) < CUSTOMER_COUNT and fresh:
            by_country[UK].append(fresh.pop())
        self._by_country = {c: _customer_table(rng, ids) for c, ids in by_country.items()}
        weights = {UK: UK_CUSTOMER_ROWS, **_FOREIGN_ROWS}
        self._countries = _Table(list(weights), [max(MIN_COUNTRY_ROWS, w) for w in weights.values()])
        self._foreign = _Table(list(_FOREIGN_ROWS), list(_FOREIGN_ROWS.values()))

    def draw(self, rng: random.Random) -> tuple[str, str]:
        country = self._countries.draw(rng)
        return self._by_country[country].draw(rng), country

    def guest_country(self, rng: random.Random) -> str:
        return UK if rng.random() < GUEST_UK_SHARE else self._foreign.draw(rng)


def _customer_table(rng: random.Random, ids: list[str]) -> _Table:
    ids = list(ids)
    rng.shuffle(ids)
    # Zipf-like head (the busiest UK customer places ~0.8% of invoices) plus a
    # floor, so that most of the pool orders at least once at scale 1.
    return _Table(ids, [1 / (rank + 15) + 1 / 1500 for rank in range(len(ids))])


@dataclass(frozen=True, slots=True)
class _KindSpec:
    name: str
    row_share: float  # target share of rows; "sale" takes the remainder
    mu: float  # lognormal parameters of lines per invoice (0, 0 = one line)
    sigma: float


_KINDS = (
    _KindSpec("sale", 0.0, 2.32, 1.24),
    _KindSpec("guest", 0.2455, 3.7, 1.1),
    _KindSpec("cancel", 0.0171, 0.35, 0.95),
    _KindSpec("adjust", 0.0020, 0.0, 0.0),
    _KindSpec("nodesc", 0.0010, 0.0, 0.0),
)


def _size_table(mu: float, sigma: float, cap: int) -> _Table:
    """Lines per invoice: a lognormal rounded to 1..cap (renormalised, not piled on cap)."""
    if sigma == 0:
        return _Table([1], [1.0])

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2))))

    edges = [cdf(n + 0.5) for n in range(1, cap + 1)]
    return _Table(list(range(1, cap + 1)), [b - a for a, b in itertools.pairwise([0.0, *edges])])


class _KindMix:
    """Chooses the kind and size of each invoice.

    Sizes are heavy-tailed, so at small scales a few big guest invoices would
    swing the row shares far from target.  A dead-band feedback keeps each
    kind's running row count within ``slack`` of its target: an invoice that
    would overshoot becomes an ordinary sale, and a kind that fell behind takes
    the next sale's place.  Within the band the choice stays purely random.
    """

    def __init__(self, rows: int) -> None:
        # No invoice may cover more than 2% of the file, else a small file could
        # jump over a whole month (the shortest holds 4.7% of the rows).
        cap = max(1, min(MAX_LINES_PER_INVOICE, int(rows * 0.02)))
        self._sizes = [_size_table(k.mu, k.sigma, cap) for k in _KINDS]
        means = [t.mean() for t in self._sizes]
        shares = [k.row_share for k in _KINDS]
        shares[0] = 1.0 - sum(shares[1:])
        self._shares = shares
        self._slack = [max(2 * m, 0.005 * rows) for m in means]
        self._pick = _Table(list(range(len(_KINDS))), [s / m for s, m in zip(shares, means, strict=True)])
        self._emitted = [0] * len(_KINDS)
        self._total = 0

    def choose(self, rng: random.Random) -> tuple[str, int]:
        kind = self._pick.draw(rng)
        size = self._sizes[kind].draw(rng)
        if kind:
            if size - self._deficit(kind) > self._slack[kind]:
                kind, size = 0, self._sizes[0].draw(rng)
        else:
            behind = [(self._deficit(k) / self._slack[k], k) for k in range(1, len(_KINDS))]
            lag, k = max(behind)
            if lag > 1:
                room = int(self._deficit(k) + self._slack[k])
                kind, size = k, max(1, min(room, self._sizes[k].draw(rng)))
        self._emitted[kind] += size
        self._total += size
        return _KINDS[kind].name, size

    def _deficit(self, kind: int) -> float:
        return self._shares[kind] * self._total - self._emitted[kind]


class _Invoice(NamedTuple):
    lines: list[Row]
    cancelled: bool
    customer: str


def _price(value: float) -> str:
    # The export writes prices like Python floats: "2.1", "165", "0".
    return f"{value:.2f}".rstrip("0").rstrip(".")


class _InvoiceFactory:
    """Builds whole invoices (lines sharing number, date, customer, country)."""

    def __init__(self, rng: random.Random, catalogue: _Catalogue, rows: int, scale: float) -> None:
        self._rng = rng
        self._catalogue = catalogue
        self._calendar = _Calendar()
        self._customers = _Customers(rng, catalogue.customers)
        self._mix = _KindMix(rows)
        self._steps = _Table(_INVOICE_STEPS, _INVOICE_STEP_WEIGHTS)
        self._next_number = FIRST_INVOICE
        self._rows = rows
        self._bad_debt = _bad_debt_schedule(rows, scale)

    def next_invoice(self, written: int) -> _Invoice:
        rng = self._rng
        stamp = self._calendar.stamp(written / self._rows)
        number = str(self._next_number)
        self._next_number += self._steps.draw(rng)
        if self._bad_debt and written >= self._bad_debt[-1][0]:
            return _bad_debt_invoice("A" + number, stamp, self._bad_debt.pop()[1])
        kind, size = self._mix.choose(rng)
        if kind == "sale":
            customer, country = self._customers.draw(rng)
            return _Invoice(self._sale(number, stamp, customer, country, size), False, customer)
        if kind == "guest":
            country = self._customers.guest_country(rng)
            return _Invoice(self._guest(number, stamp, country, size), False, "")
        if kind == "cancel":
            return self._cancel("C" + number, stamp, size)
        return _Invoice([self._stock_line(number, stamp, negative=kind == "adjust")], False, "")

    def _products(self, number: str, stamp: str, customer: str, country: str, n: int) -> list[Row]:
        rng = self._rng
        rand = rng.random
        products, cum_weights = self._catalogue.products, self._catalogue.cum_weights
        lines: list[Row] = []
        seen: set[str] = set()
        for i, drawn in enumerate(rng.choices(products, cum_weights=cum_weights, k=n)):
            if i and rand() < DUPLICATE_LINE:
                # The real set repeats a line verbatim within an invoice.
                lines.append(lines[int(rand() * i)])
                continue
            product = drawn
            if product.code in seen and rand() < REPEAT_REDRAW:
                # Independent draws would repeat popular items in big baskets
                # twice as often as the real invoices do.
                product = rng.choices(products, cum_weights=cum_weights)[0]
            seen.add(product.code)
            if rand() < MANUAL_LINE:
                manual = _price(rng.lognormvariate(1.5, 1.2))
                lines.append((number, "M", "Manual", 1, stamp, manual, customer, country))
            else:
                qty = product.quantities.draw(rng)
                lines.append(
                    (number, product.code, product.description, qty, stamp, product.price, customer, country)
                )
        return lines

    def _sale(self, number: str, stamp: str, customer: str, country: str, n: int) -> list[Row]:
        lines = self._products(number, stamp, customer, country, n)
        if country != UK and self._rng.random() < FOREIGN_POSTAGE:
            # Foreign orders usually end with a postage (EIRE: carriage) line.
            code, desc, price = ("C2", "CARRIAGE", "50") if country == "EIRE" else ("POST", "POSTAGE", "18")
            qty = self._rng.choice((1, 1, 1, 2, 3))
            lines[-1] = (number, code, desc, qty, stamp, price, customer, country)
        return lines

    def _guest(self, number: str, stamp: str, country: str, n: int) -> list[Row]:
        rng = self._rng
        lines = self._products(number, stamp, "", country, n)
        if n >= 10 and rng.random() < GUEST_DOTCOM_POSTAGE:
            # Web-shop orders carry one DOTCOM POSTAGE line priced by basket size.
            at = rng.randrange(2 * n // 3, n)
            price = _price(n * rng.uniform(0.8, 2.0))
            lines[at] = (number, "DOT", "DOTCOM POSTAGE", 1, stamp, price, "", country)
        return lines

    def _cancel(self, number: str, stamp: str, n: int) -> _Invoice:
        rng = self._rng
        if rng.random() < CANCEL_EMPTY_CUSTOMER:
            customer, country = "", UK
        else:
            customer, country = self._customers.draw(rng)
        if n == 1 and rng.random() < CANCEL_DISCOUNT:
            price = _price(rng.lognormvariate(3.0, 0.7))
            line = (number, "D", "Discount", -1, stamp, price, customer, country)
            return _Invoice([line], True, customer)
        lines = self._products(number, stamp, customer, country, n)
        # Cancellations reverse earlier purchases: same lines, negated.
        lines = [(*line[:3], -line[3], *line[4:]) for line in lines]
        return _Invoice(lines, True, customer)

    def _stock_line(self, number: str, stamp: str, *, negative: bool) -> Row:
        """One warehouse line: empty customer, price 0, usually no description."""
        rng = self._rng
        product = rng.choices(self._catalogue.products, cum_weights=self._catalogue.cum_weights)[0]
        qty = product.quantities.draw(rng)
        desc = ""
        if negative:
            qty = -qty
            if rng.random() < ADJUST_NOTE_SHARE:
                desc = rng.choice(_ADJUST_NOTES)
        return (number, product.code, desc, qty, stamp, "0", "", UK)


def _bad_debt_schedule(rows: int, scale: float) -> list[tuple[int, float]]:
    """(row position, price) of each bad-debt line, last one first (popped)."""
    count = round(BAD_DEBT_PER_FULL_SET * scale)
    groups = math.ceil(count / 3)
    # As in the real set: one +price line then its -price reversals, in groups
    # of three, each group a little past the middle of its share of the year.
    schedule = [
        (int(rows * (i // 3 + 0.55) / groups), BAD_DEBT_PRICE if i % 3 == 0 else -BAD_DEBT_PRICE)
        for i in range(count)
    ]
    return schedule[::-1]


def _bad_debt_invoice(number: str, stamp: str, price: float) -> _Invoice:
    line = (number, "B", "Adjust bad debt", 1, stamp, _price(price), "", UK)
    return _Invoice([line], False, "")


class _Counts(NamedTuple):
    rows: int
    invoices: int
    cancellation_rows: int
    empty_customer_rows: int


def _stream(writer: Any, factory: _InvoiceFactory, rows: int) -> _Counts:
    written = invoices = cancelled = empty = 0
    while written < rows:
        invoice = factory.next_invoice(written)
        take = min(len(invoice.lines), rows - written)  # the last one may be cut
        writer.writerows(invoice.lines if take == len(invoice.lines) else invoice.lines[:take])
        written += take
        invoices += 1
        if invoice.cancelled:
            cancelled += take
        if not invoice.customer:
            empty += take
    return _Counts(written, invoices, cancelled, empty)


def _row_count(scale: float) -> int:
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    rows = round(scale * FULL_ROWS)
    if rows < 1:
        raise ValueError(f"scale {scale!r} gives no rows")
    return rows


def meta_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar that records how ``path`` was generated: a hidden file, so a folder of
    generated inputs can be given to the batch job as it is (Spark skips '.' names)."""
    path = Path(path)
    return path.with_name(f".{path.name}.meta.json")


def generate(
    path: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    seed: int = 42,
    sample_path: str | os.PathLike[str] | None = None,
) -> GenerationSummary:
    """Write ``round(scale * 541,909)`` synthetic Online Retail rows to ``path``.

    The file is streamed to ``path + ".partial"`` and renamed into place only
    when complete; a ``path + ".meta.json"`` sidecar then records scale, seed
    and sample so callers can tell whether an existing file is current.
    """
    rows = _row_count(scale)
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    final.parent.mkdir(parents=True, exist_ok=True)
    # A stale sidecar must never vouch for the file about to be replaced.
    meta_path(final).unlink(missing_ok=True)
    started = time.perf_counter()
    catalogue = _load_catalogue(Path(sample_path) if sample_path is not None else DEFAULT_SAMPLE_PATH)
    factory = _InvoiceFactory(random.Random(seed), catalogue, rows, scale)
    logger.info("generating %s rows (scale %s, seed %s) into %s", f"{rows:,}", scale, seed, final)
    try:
        with open(partial, "w", encoding="utf-8-sig", newline="", buffering=1 << 20) as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
            writer.writerow(HEADER)
            counts = _stream(writer, factory, rows)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    summary = GenerationSummary(
        path=final,
        **counts._asdict(),
        bytes=final.stat().st_size,
        seconds=time.perf_counter() - started,
        scale=scale,
        seed=seed,
    )
    _write_meta(summary, catalogue.digest)
    logger.info("generated %s", summary.describe())
    return summary


def _meta_record(scale: float, seed: int, digest: str) -> dict[str, Any]:
    return {"scale": scale, "seed": seed, "sample_sha256": digest, "generator_version": GENERATOR_VERSION}


def _write_meta(summary: GenerationSummary, digest: str) -> None:
    record = _meta_record(summary.scale, summary.seed, digest)
    record.update(rows=summary.rows, invoices=summary.invoices, bytes=summary.bytes)
    target = meta_path(summary.path)
    scratch = target.with_name(target.name + ".partial")
    scratch.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, target)


def is_current(
    path: str | os.PathLike[str],
    *,
    scale: float,
    seed: int,
    sample_path: str | os.PathLike[str] | None = None,
) -> bool:
    """True if ``path`` exists and was generated with these parameters."""
    path = Path(path)
    try:
        record = json.loads(meta_path(path).read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    sample = Path(sample_path) if sample_path is not None else DEFAULT_SAMPLE_PATH
    digest = hashlib.sha256(sample.read_bytes()).hexdigest()
    expected = _meta_record(float(scale), seed, digest)
    return all(record.get(k) == v for k, v in expected.items()) and record.get("bytes") == size


def default_output(scale: float) -> Path:
    return DEFAULT_OUTPUT_DIR / f"online_retail_scale_{scale:g}.csv"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m retail_pipeline_dev.synthetic --scale 10``."""
    parser = argparse.ArgumentParser(description="Generate a synthetic Online Retail CSV.")
    parser.add_argument("--scale", type=float, default=1.0, help="multiple of the 541,909 real rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, help="default: data/synthetic/online_retail_scale_<scale>.csv")
    parser.add_argument("--sample", type=Path, help="real sample to draw the catalogue from")
    parser.add_argument("--force", action="store_true", help="regenerate even if the output is current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output or default_output(args.scale)
    try:
        rows = _row_count(args.scale)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.force and is_current(output, scale=args.scale, seed=args.seed, sample_path=args.sample):
        print(f"{output}: up to date ({rows:,} rows, scale {args.scale:g}, seed {args.seed}); use --force")
        return 0
    summary = generate(output, scale=args.scale, seed=args.seed, sample_path=args.sample)
    print(summary.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
