"""How a quality outcome names itself in the run report, the JSON result and the error."""

from __future__ import annotations

from retail_pipeline.quality import ExpectationOutcome


def test_a_table_check_shows_what_it_saw() -> None:
    columns = ExpectationOutcome(
        suite="curated_invoice_lines",
        expectation="expect_table_columns_to_match_ordered_list",
        kwargs={"column_list": ["invoice_no", "stock_code"]},
        severity="critical",
        success=False,
        observed_value=["stock_code", "invoice_no"],
    )

    assert columns.describe() == (
        "curated_invoice_lines.expect_table_columns_to_match_ordered_list("
        "column_list=['invoice_no', 'stock_code']): observed ['stock_code', 'invoice_no']"
    )


def test_a_column_check_shows_its_count_and_examples() -> None:
    country = ExpectationOutcome(
        suite="curated_invoice_lines",
        expectation="expect_column_values_to_be_in_set",
        kwargs={"column": "country"},
        severity="warning",
        success=False,
        unexpected_count=1_234,
        examples=["Atlantis"],
    )

    assert country.describe() == (
        "curated_invoice_lines.expect_column_values_to_be_in_set(country): "
        "1,234 unexpected, e.g. ['Atlantis']"
    )
