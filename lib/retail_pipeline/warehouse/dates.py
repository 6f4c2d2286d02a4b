"""dim_date's rows: whole calendar years, made in Python (Redshift cannot insert the output of
generate_series, which runs on its leader node only), inserted through a staging table.

Power BI marks a date table only when its dates are contiguous: the load keeps dim_date
covering every day from January 1 of the first year with sales to December 31 of the last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from retail_pipeline.warehouse.merge import sql_literal
from retail_pipeline.warehouse.model import DIM_DATE

SqlValue = int | str | bool | dt.date

# Insert in chunks: Redshift limits a statement to 16 MB; a year is about 40 KB of SQL.
ROWS_PER_INSERT = 1000
# English names whatever the process's locale (strftime's %B and %A follow it).
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def date_key(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def year_of(key: int) -> int:
    return key // 10000


def calendar_row(day: dt.date) -> tuple[SqlValue, ...]:
    _, iso_week, iso_weekday = day.isocalendar()
    return (
        date_key(day),
        day,
        day.year,
        (day.month - 1) // 3 + 1,
        day.month,
        MONTH_NAMES[day.month - 1],
        f"{day.year:04d}-{day.month:02d}",
        day.day,
        iso_weekday,
        DAY_NAMES[iso_weekday - 1],
        iso_week,
        iso_weekday >= 6,
    )


def calendar_years(first_year: int, last_year: int) -> Iterator[tuple[SqlValue, ...]]:
    day = dt.date(first_year, 1, 1)
    end = dt.date(last_year, 12, 31)
    while day <= end:
        yield calendar_row(day)
        day += dt.timedelta(days=1)


def years_to_cover(key_ranges: Sequence[int | None]) -> tuple[int, int] | None:
    """From (batch min, batch max, table min, table max) date keys: the years dim_date must
    span, or None when the batch has no sales."""
    batch_min, batch_max = key_ranges[0], key_ranges[1]
    if batch_min is None or batch_max is None:
        return None
    keys = [int(key) for key in key_ranges if key is not None]
    return year_of(min(keys)), year_of(max(keys))


def render(value: SqlValue) -> str:
    # bool first: it is also an int.
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return sql_literal(value)


def calendar_statements(first_year: int, last_year: int) -> list[str]:
    """Stage every day of the years, then add the days dim_date lacks."""
    columns = ", ".join(DIM_DATE.column_names)
    rows = [f"({', '.join(render(v) for v in row)})" for row in calendar_years(first_year, last_year)]
    statements = [
        f"INSERT INTO stage_dates ({columns}) VALUES\n" + ",\n".join(rows[start : start + ROWS_PER_INSERT])
        for start in range(0, len(rows), ROWS_PER_INSERT)
    ]
    statements.append(
        f"INSERT INTO dim_date ({columns})\nSELECT {columns} FROM stage_dates\n"
        "WHERE date_key NOT IN (SELECT date_key FROM dim_date)"
    )
    return statements
