"""The data-quality gate: Great Expectations suites over the raw input and the curated output.

Critical expectations block publishing; warning ones are reported and the run goes on. Both
suites are validated on the job's staged Parquet before anything becomes visible, so the data
checked is exactly the data published (the raw suite on every data line as the job parsed
it, the curated suite on the published lines).

Speed: GX on Spark bundles most metrics into a few Spark jobs, but fetching unexpected values
costs about one more job per column expectation (43 jobs instead of 15 for the curated suite,
twice the time). So both suites run with BASIC results and no unexpected values (counts
only); just the critical expectations that failed run again, in a small suite of their own,
to show a few offending values. The two suites run side by side in two threads, and GX does
not cache the batch (see `_Validator.prepare`).

Every curated expectation is a map condition on the whole table where GX allows it, so GX
folds their unexpected counts into one aggregation: the revenue check is a column of the
batch (`revenue_minus_quantity_x_unit_price`, which must be 0) rather than a column-pair
expectation (two scans of its own), "customer_id never empty" a regex rather than a length
metric (one more scan), and the compound-key check ignores no rows (its columns are required
anyway; a filtered domain costs a count of its own). Only the uniqueness check, a window over
(invoice_no, stock_code), needs a shuffle. (No query expectations: GX runs each query twice,
and registers every batch as the same temp view, which two suites in parallel would share.)
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, cast

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from retail_pipeline import rules
from retail_pipeline.config import QualitySettings

logger = logging.getLogger(__name__)

RAW_SUITE = "raw_input"
CURATED_SUITE = "curated_invoice_lines"
# The data set's InvoiceNo: six digits, C for a cancellation, A for a bad-debt adjustment.
INVOICE_NO_SHAPE = r"^[CA]?[0-9]{6}$"
# The curated batch's extra column for the revenue check: revenue - quantity x unit_price, 0
# on every line (exact decimal arithmetic; null, and so caught by the not-null checks, only
# where revenue, quantity or unit_price is).
REVENUE_CHECK = "revenue_minus_quantity_x_unit_price"


class QualityGateError(RuntimeError):
    """A critical expectation failed: the run publishes no data."""

    def __init__(self, result: QualityResult) -> None:
        self.result = result
        super().__init__(
            f"data-quality gate failed, nothing published: {'; '.join(self.describe_failures())}"
        )

    def describe_failures(self) -> list[str]:
        return [outcome.describe() for outcome in self.result.critical_failures]


@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    expectation: str
    kwargs: dict[str, Any]
    severity: str
    success: bool
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)

    def key(self) -> str:
        return json.dumps([self.expectation, self.kwargs], sort_keys=True, default=str)

    def describe(self) -> str:
        target = self.kwargs.get("column") or self.kwargs.get("column_list") or self.kwargs.get("description")
        text = f"{self.suite}.{self.expectation}({target or ''})"
        if self.unexpected_count is not None:
            text += f": {self.unexpected_count:,} unexpected"
        if self.examples:
            text += f", e.g. {self.examples}"
        return text


@dataclass(frozen=True)
class QualityResult:
    outcomes: list[ExpectationOutcome]
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the validation

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]

    @property
    def success(self) -> bool:
        return not self.critical_failures

    def to_json(self) -> str:
        summary = {
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "phases_s": self.phases,
            "evaluated": len(self.outcomes),
            "critical_failures": [o.describe() for o in self.critical_failures],
            "warnings": [o.describe() for o in self.warnings],
            "expectations": [asdict(o) for o in self.outcomes],
        }
        return json.dumps(summary, indent=2, default=str)


def raw_suite_expectations() -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    warning = FailureSeverity.WARNING

    return [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(rules.RAW_COLUMNS)),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        # Malformed lines are quarantined with a reason, so these are warnings here.
        gxe.ExpectColumnValuesToMatchRegex(column="InvoiceNo", regex=INVOICE_NO_SHAPE, severity=warning),
        gxe.ExpectColumnValuesToNotBeNull(column="StockCode", severity=warning),
    ]


def curated_suite_expectations(settings: QualitySettings, *, published_rows: int) -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    warning = FailureSeverity.WARNING

    required = (
        "invoice_no",
        "stock_code",
        "quantity",
        "unit_price",
        "revenue",
        "invoice_ts",
        "customer_id",
        "country",
    )
    return [
        gxe.ExpectTableRowCountToEqual(value=published_rows),
        *[gxe.ExpectColumnValuesToNotBeNull(column=column) for column in required],
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToNotMatchRegex(column="invoice_no", regex="^[CcAa]"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="customer_id", regex=r"^\s*$"),
        gxe.ExpectColumnValuesToBeBetween(
            column="invoice_ts",
            min_value=datetime.fromisoformat(settings.invoice_ts_min),
            max_value=datetime.fromisoformat(settings.invoice_ts_max),
        ),
        # revenue = quantity x unit_price on every line.
        gxe.ExpectColumnValuesToBeBetween(column=REVENUE_CHECK, min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeInSet(
            column="country", value_set=list(settings.known_countries), severity=warning
        ),
        # The real data repeats (InvoiceNo, StockCode) within an invoice: worth seeing, not an error.
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["invoice_no", "stock_code"], ignore_row_if="never", severity=warning
        ),
    ]


class _Validator:
    """An ephemeral GX context with a Data Docs site in `docs_dir`; each validation gets a
    Spark data source of its own, so validations can run side by side in threads (a data
    source's execution engine holds the one batch it is working on)."""

    def __init__(self, docs_dir: str) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics, no internet
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        site = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
        }
        self.context.add_data_docs_site(site_name="run", site_config=cast(Any, site))

    def prepare(
        self, name: str, expectations: Sequence[Any], frame: DataFrame, result_format: dict
    ) -> tuple[Any, Callable[[], Any]]:
        """Register a suite for `frame`; returns the suite and a function that validates."""
        gx = self._gx
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=list(expectations)))
        # persist=False: GX would otherwise cache the whole batch, every column, before its
        # first metric; on staged Parquet each metric reads just its columns. Measured on a
        # SCALE=1 run: validation 9.4 s with the cache, 6.5 s without (5.7 s with both
        # suites in parallel); SCALE=10: 28.9 s -> 13.3 s.
        source = self.context.data_sources.add_spark(name=f"spark_{name}", persist=False)
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        return suite, functools.partial(
            definition.run, batch_parameters={"dataframe": frame}, result_format=result_format
        )


def _severity(config: Any) -> str:
    return str(getattr(config.severity, "value", config.severity))


def _outcomes(suite: str, result: Any) -> list[ExpectationOutcome]:
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        details = item.result or {}
        examples = details.get("partial_unexpected_list") or details.get("details", {}).get("unexpected_rows")
        outcomes.append(
            ExpectationOutcome(
                suite=suite,
                expectation=config.type,
                kwargs={k: v for k, v in config.kwargs.items() if k not in ("batch_id", "value_set")},
                severity=_severity(config),
                success=bool(item.success),
                unexpected_count=details.get("unexpected_count", details.get("observed_value")),
                examples=list(examples or [])[:5],
            )
        )
    return outcomes


def validate(
    raw: DataFrame,
    curated: DataFrame,
    *,
    settings: QualitySettings,
    published_rows: int,
    docs_dir: str | None = None,
) -> tuple[QualityResult, str]:
    """Validate both suites; returns the result and the local folder of the Data Docs site."""
    import time

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(phase: str) -> None:
        phases[phase] = round(time.perf_counter() - started - sum(phases.values()), 3)

    docs_dir = docs_dir or tempfile.mkdtemp(prefix="data_docs_")
    validator = _Validator(docs_dir)
    lap("context")
    details = {"result_format": "BASIC", "partial_unexpected_count": settings.examples_shown}
    counts_only = {"result_format": "BASIC", "partial_unexpected_count": 0}
    # Counts only: malformed raw lines are in the quarantine output, reason by reason.
    _, validate_raw = validator.prepare(RAW_SUITE, raw_suite_expectations(), raw, counts_only)
    curated_expectations = curated_suite_expectations(settings, published_rows=published_rows)
    product = (F.col("quantity") * F.col("unit_price")).cast(rules.REVENUE_TYPE)
    curated = curated.withColumn(REVENUE_CHECK, F.col("revenue") - product)
    suite, validate_curated = validator.prepare(CURATED_SUITE, curated_expectations, curated, counts_only)
    # Both suites at once: most of a GX validation is waiting for small Spark jobs one after
    # another (planning, scheduling), which two threads overlap.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gx") as pool:
        raw_run, curated_run = pool.submit(validate_raw), pool.submit(validate_curated)
        raw_result, result = raw_run.result(), curated_run.result()
    lap("suites")
    outcomes = _outcomes(RAW_SUITE, raw_result)
    curated_outcomes = _outcomes(CURATED_SUITE, result)
    # Offending values for failed critical expectations only: the warnings keep their counts,
    # and the one that fails on all real data (repeated invoice lines) would double its cost.
    failed_ids = {
        item.expectation_config.id
        for item in result.results
        if not item.success and _severity(item.expectation_config) == "critical"
    }
    if failed_ids:
        failed = [copy.copy(e) for e in suite.expectations if e.id in failed_ids]
        _, validate_failed = validator.prepare(f"{CURATED_SUITE}__failed", failed, curated, details)
        by_key = {o.key(): o for o in _outcomes(CURATED_SUITE, validate_failed())}
        curated_outcomes = [by_key.get(o.key(), o) for o in curated_outcomes]
        lap("offending_values")
    outcomes += curated_outcomes
    validator.context.build_data_docs()
    lap("data_docs")
    quality = QualityResult(outcomes, time.perf_counter() - started, phases)
    for outcome in quality.warnings:
        logger.warning("Quality warning: %s", outcome.describe())
    for outcome in quality.critical_failures:
        logger.error("Quality failure: %s", outcome.describe())
    logger.info(
        "Validated %d expectations in %.1f s (%s): %d critical failures, %d warnings",
        len(outcomes),
        quality.seconds,
        ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in phases.items()),
        len(quality.critical_failures),
        len(quality.warnings),
    )
    return quality, docs_dir
