"""Row accounting: the staged lines must be the lines read, the quarantine the lines counted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from retail_pipeline.contract import OUTCOME_FILTERED, OUTCOME_PUBLISHED, OUTCOME_QUARANTINED
from retail_pipeline.report import AccountingError, OutcomeCounts, check_accounting

STAGED = OutcomeCounts.from_groups(
    [
        (OUTCOME_PUBLISHED, None, 90, Decimal("123.45")),
        (OUTCOME_FILTERED, "cancellation", 7, None),
        (OUTCOME_QUARANTINED, "invalid_quantity", 3, None),
    ]
)


def test_lines_staged_as_read_pass() -> None:
    check_accounting(STAGED, lines_read=100, quarantined_read=3, quarantine_written=3)


def test_a_line_read_but_not_staged_fails_the_run() -> None:
    with pytest.raises(AccountingError, match="read 101 lines but staged 100"):
        check_accounting(STAGED, lines_read=101, quarantined_read=3, quarantine_written=3)


@pytest.mark.parametrize(
    ("quarantined_read", "quarantine_written", "message"),
    [
        (4, 4, "counted 4 quarantined lines but staged 3"),
        (3, 2, "counted 3 quarantined lines but wrote 2"),
    ],
)
def test_quarantine_must_hold_the_lines_counted(
    quarantined_read: int, quarantine_written: int, message: str
) -> None:
    with pytest.raises(AccountingError, match=message):
        check_accounting(
            STAGED, lines_read=100, quarantined_read=quarantined_read, quarantine_written=quarantine_written
        )


def test_lines_of_no_known_outcome_fail_the_run() -> None:
    staged = OutcomeCounts.from_groups([(OUTCOME_PUBLISHED, None, 99, Decimal(0)), ("lost", None, 1, None)])
    assert staged.unclassified == 1
    with pytest.raises(AccountingError, match="1 lines have no outcome"):
        check_accounting(staged, lines_read=100, quarantined_read=0, quarantine_written=0)
