"""The data-quality gate: Great Expectations suites over the raw input and the curated output.

Critical expectations block publishing; warning ones are reported and the run goes on. The
suites are validated on the job's staged Parquet before anything becomes visible, so the data
checked is exactly the data published: `raw_input` on every data line as the job parsed it,
`curated_invoice_lines` and `curated_invoice_keys` (the curated output's checks, in two
suites: see below) on the published lines.

Speed (GX on Spark computes each metric with Spark jobs of its own, and the gate's cost on a
small input is mostly their fixed cost, so the aim is fewer, shared jobs):
- Every curated expectation but one is a map condition on the whole table, which GX folds
  into one aggregation: the revenue check is a column of the batch
  (`revenue_minus_quantity_x_unit_price`, which must be 0) rather than a column-pair
  expectation (two scans of its own), "customer_id never empty" a regex rather than a
  length metric (one more scan).
- The one that needs a shuffle, (invoice_no, stock_code) unique (a window), is a suite of its
  own, `curated_invoice_keys` (on one string key of both columns, see `keys_suite_expectations`),
  so it runs beside the others instead of after them: the three
  suites run side by side in three threads, overlapping GX's Python work and small jobs.
- The curated suite runs BOOLEAN_ONLY: fetching unexpected values costs one more Spark job
  per expectation even when asking for none; the expectations that failed run again, in a
  small suite of their own, for their counts and a few offending values; a passed one gets
  the count its success implies (`_counted_pass`). The raw and keys suites run BASIC without
  values (counts only: the keys warning fails on all real data).
- GX does not cache the batch (see `_Validator.prepare`); it reads the staged Parquet.
(No query expectations: GX runs each query twice, and registers every batch as the same temp
view, which suites in parallel would share.)
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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from retail_pipeline import rules
from retail_pipeline.config import QualitySettings

logger = logging.getLogger(__name__)

RAW_SUITE = "raw_input"
CURATED_SUITE = "curated_invoice_lines"
KEYS_SUITE = "curated_invoice_keys"
# The data set's InvoiceNo: six digits, C for a cancellation, A for a bad-debt adjustment.
INVOICE_NO_SHAPE = r"^[CA]?[0-9]{6}$"
# The curated batch's extra column for the revenue check: revenue - quantity x unit_price, 0
# on every line (exact decimal arithmetic; null, and so caught by the not-null checks, only
# where revenue, quantity or unit_price is).
REVENUE_CHECK = "revenue_minus_quantity_x_unit_price"
# The keys batch's one column: invoice_no, stock_code and invoice_no's length, joined by NUL
# characters. The length (after the last NUL) says where invoice_no ends, so two lines share
# the key exactly when they share both fields, whatever characters the fields hold.
INVOICE_LINE_KEY = "invoice_no_stock_code"


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
    unexpected_count: int | None = None  # lines that failed a column check
    observed_value: Any = None  # what a table check saw (a row count, the column list)
    examples: list[Any] = field(default_factory=list)

    def key(self) -> str:
        return json.dumps([self.expectation, self.kwargs], sort_keys=True, default=str)

    def describe(self) -> str:
        target = self.kwargs.get("column") or ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        text = f"{self.suite}.{self.expectation}({target})"
        if self.unexpected_count is not None:
            text += f": {self.unexpected_count:,} unexpected"
        elif self.observed_value is not None:
            text += f": observed {self.observed_value}"
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

    # Every curated column but the free-text description (empty in the data set at times) and
    # the partition columns (folder names, derived from invoice_ts).
    required = [c for c in rules.CURATED_COLUMNS if c not in ("description", *rules.PARTITION_COLUMNS)]
    earliest, latest = settings.invoice_ts_bounds(datetime.now(UTC).replace(tzinfo=None))
    return [
        gxe.ExpectTableRowCountToEqual(value=published_rows),
        *[gxe.ExpectColumnValuesToNotBeNull(column=column) for column in required],
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToNotMatchRegex(column="invoice_no", regex="^[CcAa]"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="customer_id", regex=r"^\s*$"),
        gxe.ExpectColumnValuesToBeBetween(
            column="invoice_ts",
            min_value=earliest,
            max_value=latest,
        ),
        # revenue = quantity x unit_price on every line.
        gxe.ExpectColumnValuesToBeBetween(column=REVENUE_CHECK, min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeInSet(
            column="country", value_set=list(settings.known_countries), severity=warning
        ),
    ]


def invoice_line_key() -> Column:
    return F.concat_ws("\u0000", "invoice_no", "stock_code", F.length("invoice_no").cast("string"))


def keys_suite_expectations() -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    return [
        # The real data repeats (InvoiceNo, StockCode) within an invoice: worth seeing, not an
        # error. One string key rather than ExpectCompoundColumnsToBeUnique, whose window
        # partitions by a struct of the two columns: same count, 8.8 s -> 5.5 s on the
        # SCALE=10 output (shuffling and sorting one string instead of a struct).
        gxe.ExpectColumnValuesToBeUnique(column=INVOICE_LINE_KEY, severity=FailureSeverity.WARNING),
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
        # GX's own views, compiling their page templates once per process (see data_docs).
        views = "retail_pipeline.data_docs"
        page_view = {"module_name": views, "class_name": "PageView"}
        site = {
            "class_name": "SiteBuilder",
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "view": {"module_name": views, "class_name": "IndexPageView"},
            },
            "site_section_builders": {
                section: {"view": page_view} for section in ("expectations", "validations", "profiling")
            },
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
        }
        self.context.add_data_docs_site(site_name="run", site_config=cast(Any, site))

    def prepare(
        self,
        name: str,
        expectations: Sequence[Any],
        frame: DataFrame,
        result_format: dict,
        *,
        run_id: Any = None,
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
            definition.run, batch_parameters={"dataframe": frame}, result_format=result_format, run_id=run_id
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
                unexpected_count=details.get("unexpected_count"),
                observed_value=details.get("observed_value"),
                examples=list(examples or [])[:5],
            )
        )
    return outcomes


def _counted_pass(outcome: ExpectationOutcome) -> ExpectationOutcome:
    """A passed BOOLEAN_ONLY outcome with the count its success implies (GX returns none in
    that format): 0 unexpected for a column check that allows none (no `mostly`), the
    expected row count for the row-count check. Anything else is left as it is."""
    if not outcome.success:
        return outcome
    if "column" in outcome.kwargs and outcome.kwargs.get("mostly") in (None, 1, 1.0):
        return replace(outcome, unexpected_count=outcome.unexpected_count or 0)
    if outcome.expectation == "expect_table_row_count_to_equal":
        return replace(outcome, observed_value=outcome.kwargs["value"])
    return outcome


def validate(
    raw: DataFrame,
    curated: DataFrame,
    *,
    settings: QualitySettings,
    published_rows: int,
    docs_dir: str | None = None,
    run_id: str | None = None,
    data_asset: str | None = None,
) -> tuple[QualityResult, str]:
    """Validate both suites; returns the result and the local folder of the Data Docs site.
    The site's pages name the run (`run_id`, by default the one being logged) and the data
    asset (`data_asset`, by default the output's curated folder and months, from the staged
    files' paths)."""
    import time

    from great_expectations.core.run_identifier import RunIdentifier

    from retail_pipeline import data_docs
    from retail_pipeline.logs import current_run_id

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(phase: str) -> None:
        phases[phase] = round(time.perf_counter() - started - sum(phases.values()), 3)

    docs_dir = docs_dir or tempfile.mkdtemp(prefix="data_docs_")
    validator = _Validator(docs_dir)
    run_name = run_id or current_run_id() or "unnamed run"
    run = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    lap("context")
    details = {"result_format": "BASIC", "partial_unexpected_count": settings.examples_shown}
    counts_only = {"result_format": "BASIC", "partial_unexpected_count": 0}
    product = (F.col("quantity") * F.col("unit_price")).cast(rules.REVENUE_TYPE)
    curated = curated.withColumn(REVENUE_CHECK, F.col("revenue") - product)
    # Counts only: malformed raw lines are in the quarantine output, reason by reason.
    _, validate_raw = validator.prepare(RAW_SUITE, raw_suite_expectations(), raw, counts_only, run_id=run)
    suite, validate_curated = validator.prepare(
        CURATED_SUITE,
        curated_suite_expectations(settings, published_rows=published_rows),
        curated,
        {"result_format": "BOOLEAN_ONLY"},
        run_id=run,
    )
    _, validate_keys = validator.prepare(
        KEYS_SUITE,
        keys_suite_expectations(),
        curated.select(invoice_line_key().alias(INVOICE_LINE_KEY)),
        counts_only,
        run_id=run,
    )
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="gx") as pool:
        runs = [pool.submit(run) for run in (validate_raw, validate_curated, validate_keys)]
        raw_result, result, keys_result = (run.result() for run in runs)
    lap("suites")
    outcomes = _outcomes(RAW_SUITE, raw_result)
    curated_outcomes = [_counted_pass(o) for o in _outcomes(CURATED_SUITE, result)]
    failed_ids = {item.expectation_config.id for item in result.results if not item.success}
    if failed_ids:
        failed = [copy.copy(e) for e in suite.expectations if e.id in failed_ids]
        _, validate_failed = validator.prepare(
            f"{CURATED_SUITE}__failed", failed, curated, details, run_id=run
        )
        by_key = {o.key(): o for o in _outcomes(CURATED_SUITE, validate_failed())}
        curated_outcomes = [by_key.get(o.key(), o) for o in curated_outcomes]
        lap("failed_again")
    curated_outcomes += _outcomes(KEYS_SUITE, keys_result)
    outcomes += curated_outcomes
    curated_name = data_asset or data_docs.curated_asset(curated.inputFiles())
    assets = {RAW_SUITE: data_docs.input_asset(raw.inputFiles(), run_name)}
    assets |= {CURATED_SUITE: curated_name, KEYS_SUITE: curated_name}
    rows = {CURATED_SUITE: published_rows, KEYS_SUITE: published_rows}
    data_docs.describe_results(
        validator.context, run_name=run_name, assets=assets, outcomes=outcomes, rows=rows
    )
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
