"""The data-quality gate: Great Expectations suites over the curated lines a run publishes.

Critical expectations block publishing; warning ones are reported and the run goes on. The
suites run on the job's staged Parquet before anything becomes visible, so the data checked is
exactly the data published:
- `curated_invoice_lines`: the contract (row count, required columns not null, InvoiceDate
  range, revenue = quantity x unit_price) and each filter rule of `rules.FILTER_RULES` turned
  round: no published line matches it. GX folds these map conditions into one aggregation.
- `curated_invoice_keys`: (invoice_no, stock_code) repeats, a warning (the real data repeats
  lines within an invoice), from one distinct count of a joined key in a batch of its own.
The raw lines get no suite: each malformed line is quarantined with its reason in the same
pass that classifies it, and the run report counts them reason by reason.

The two suites run side by side in two threads. The curated suite runs BOOLEAN_ONLY (asking
GX for unexpected values costs a Spark job per expectation); an expectation that failed runs
again, alone, for its count and a few offending values. GX does not cache the batch
(`_Validator.prepare`): each metric reads its columns of the staged Parquet.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import re
import tempfile
import time
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

CURATED_SUITE = "curated_invoice_lines"
KEYS_SUITE = "curated_invoice_keys"
# The curated batch's extra column for the revenue check: revenue - quantity x unit_price, 0
# on every line (exact decimal arithmetic; null, and so caught by the not-null checks, only
# where revenue, quantity or unit_price is).
REVENUE_CHECK = "revenue_minus_quantity_x_unit_price"
# The keys batch's one column: (invoice_no, stock_code) as a struct, so two lines share the
# key exactly when they share both fields; distinct structs count faster than a string built
# from the two (no string is made per line).
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
        *[filter_rule_expectation(rule) for rule in rules.FILTER_RULES],
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


def filter_rule_expectation(rule: rules.FilterRule) -> Any:
    """A filter rule turned round for the curated lines: no published line matches it."""
    import great_expectations.expectations as gxe

    if rule.op == "starts_with":
        # Spark's rlike (Java regex): (?i) as the rule's case-insensitive match.
        regex = f"(?i)^{re.escape(str(rule.operand))}"
        return gxe.ExpectColumnValuesToNotMatchRegex(column=rule.field, regex=regex)
    if rule.op == "at_most":
        return gxe.ExpectColumnValuesToBeBetween(
            column=rule.field, min_value=int(rule.operand), strict_min=True
        )
    raise ValueError(f"filter rule {rule.name!r} has an unknown op {rule.op!r}")


def invoice_line_key() -> Column:
    return F.struct("invoice_no", "stock_code")


def keys_suite_expectations(published_rows: int) -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    # A distinct count (a hash aggregation) rather than ExpectColumnValuesToBeUnique, whose
    # window sorts every key; `_repeated_lines` turns it into the lines that repeat a key.
    return [
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=INVOICE_LINE_KEY, min_value=published_rows, severity=FailureSeverity.WARNING
        ),
    ]


def _repeated_lines(outcome: ExpectationOutcome, published_rows: int) -> ExpectationOutcome:
    """The keys check with its unexpected count: the lines that repeat an earlier line's key."""
    if outcome.expectation != "expect_column_unique_value_count_to_be_between":
        return outcome
    distinct = outcome.observed_value
    return replace(outcome, unexpected_count=published_rows - int(distinct) if distinct is not None else None)


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
        # first metric; on staged Parquet each metric reads just its columns.
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


class _Phases:
    """Seconds per step of a validation, in order."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        self.seconds[phase] = round(time.perf_counter() - self.started - sum(self.seconds.values()), 3)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started


def validate(
    curated: DataFrame,
    *,
    settings: QualitySettings,
    published_rows: int,
    docs_dir: str | None = None,
    run_id: str | None = None,
    data_asset: str | None = None,
) -> tuple[QualityResult, str]:
    """Validate the curated lines; returns the result and the local folder of the Data Docs
    site. The site's pages name the run (`run_id`, by default the one being logged) and the
    data asset (`data_asset`, by default the output's curated folder and months, from the
    staged files' paths)."""
    from great_expectations.core.run_identifier import RunIdentifier

    from retail_pipeline import data_docs
    from retail_pipeline.logs import current_run_id

    phases = _Phases()
    docs_dir = docs_dir or tempfile.mkdtemp(prefix="data_docs_")
    validator = _Validator(docs_dir)
    run_name = run_id or current_run_id() or "unnamed run"
    run = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    phases.lap("context")
    outcomes = _run_suites(validator, curated, settings=settings, published_rows=published_rows, run=run)
    phases.lap("suites")
    curated_name = data_asset or data_docs.curated_asset(curated.inputFiles())
    data_docs.describe_results(
        validator.context,
        run_name=run_name,
        assets=dict.fromkeys((CURATED_SUITE, KEYS_SUITE), curated_name),
        outcomes=outcomes,
        rows=dict.fromkeys((CURATED_SUITE, KEYS_SUITE), published_rows),
    )
    validator.context.build_data_docs()
    phases.lap("data_docs")
    quality = QualityResult(outcomes, phases.total, phases.seconds)
    _log(quality)
    return quality, docs_dir


def _run_suites(
    validator: _Validator, curated: DataFrame, *, settings: QualitySettings, published_rows: int, run: Any
) -> list[ExpectationOutcome]:
    """Both suites side by side; the curated expectations that failed again for details."""
    product = (F.col("quantity") * F.col("unit_price")).cast(rules.REVENUE_TYPE)
    curated = curated.withColumn(REVENUE_CHECK, F.col("revenue") - product)
    suite, validate_curated = validator.prepare(
        CURATED_SUITE,
        curated_suite_expectations(settings, published_rows=published_rows),
        curated,
        {"result_format": "BOOLEAN_ONLY"},
        run_id=run,
    )
    _, validate_keys = validator.prepare(
        KEYS_SUITE,
        keys_suite_expectations(published_rows),
        curated.select(invoice_line_key().alias(INVOICE_LINE_KEY)),
        {"result_format": "BASIC", "partial_unexpected_count": 0},
        run_id=run,
    )
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gx") as pool:
        runs = [pool.submit(run) for run in (validate_curated, validate_keys)]
        result, keys_result = (run.result() for run in runs)
    outcomes = [_counted_pass(o) for o in _outcomes(CURATED_SUITE, result)]
    failed_ids = {item.expectation_config.id for item in result.results if not item.success}
    if failed_ids:
        failed = [copy.copy(e) for e in suite.expectations if e.id in failed_ids]
        details = {"result_format": "BASIC", "partial_unexpected_count": settings.examples_shown}
        _, validate_failed = validator.prepare(
            f"{CURATED_SUITE}__failed", failed, curated, details, run_id=run
        )
        by_key = {o.key(): o for o in _outcomes(CURATED_SUITE, validate_failed())}
        outcomes = [by_key.get(o.key(), o) for o in outcomes]
    return outcomes + [_repeated_lines(o, published_rows) for o in _outcomes(KEYS_SUITE, keys_result)]


def _log(quality: QualityResult) -> None:
    for outcome in quality.warnings:
        logger.warning("Quality warning: %s", outcome.describe())
    for outcome in quality.critical_failures:
        logger.error("Quality failure: %s", outcome.describe())
    logger.info(
        "Validated %d expectations in %.1f s (%s): %d critical failures, %d warnings",
        len(quality.outcomes),
        quality.seconds,
        ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in quality.phases.items()),
        len(quality.critical_failures),
        len(quality.warnings),
    )
