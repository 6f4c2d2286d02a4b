"""Data Docs: views that compile GX's Jinja page templates once per process, and the naming
and observed values of the validation pages (`describe_results`).

GX's site builder gives every site section (expectation suites, validation results,
profiling) and the index a view of its own, each with its own Jinja environment, so the same
page templates would be compiled again for each. These views share one in-memory bytecode
cache, so each template compiles once per process; the pages are the same (figures:
docs/benchmarks.md).

`quality._Validator` names these classes in its site configuration, GX's own way of choosing
a section's view.

A validation page names its run (GX's run name: the job's run id), its data asset (the output's
curated folder and the run's months, or the run's input lines) and shows an observed value for
every check: the curated suite runs BOOLEAN_ONLY (see `quality`), so GX records no counts for
the checks that passed; `describe_results` writes in the counts their success implies, and the
failed checks' counts from their second run, before the site is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class SharedBytecode(jinja2.BytecodeCache):
    """Compiled templates kept in memory, shared by every environment that uses this cache."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = SharedBytecode()


class _SharedTemplates:
    """Gives a GX Jinja view (which sets up `env` in its own __init__) the shared templates."""

    env: jinja2.Environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = TEMPLATES


class PageView(_SharedTemplates, DefaultJinjaPageView):
    """GX's page view (suites, validation results) with the shared compiled templates."""


class IndexPageView(_SharedTemplates, DefaultJinjaIndexPageView):
    """GX's index page view with the shared compiled templates."""


STAGING_MARK = "/_staging/"
MONTH_IN_PATH = re.compile(r"invoice_year=(\d+)/invoice_month=(\d+)")


def output_of(paths: Iterable[str]) -> str | None:
    """The job's output folder of staged files (<output>/_staging/<run>/...), if they are."""
    for path in paths:
        if STAGING_MARK in path:
            # Spark names local files file:///...; the job's output is the path as given.
            return path.split(STAGING_MARK, 1)[0].removeprefix("file://")
    return None


def curated_asset(paths: Iterable[str]) -> str:
    """The curated lines a run validates, by the output's curated folder and the run's months:
    "s3://bucket/batch/curated, months 2010-12, 2011-01" (from the staged files' paths)."""
    listed = list(paths)
    found = (MONTH_IN_PATH.search(path) for path in listed)
    months = sorted({(int(match.group(1)), int(match.group(2))) for match in found if match})
    where = f"{output_of(listed)}/curated" if output_of(listed) else "curated invoice lines"
    shown = ", ".join(f"{year}-{month:02d}" for year, month in months) or "none"
    return f"{where}, months {shown}"


def observed(outcome: Any, rows: int | None) -> dict[str, Any]:
    """A passed or re-run check's result as GX records it in BASIC format: the observed value
    of a table check; the unexpected count and share of a column check."""
    if outcome.observed_value is not None:
        return {"observed_value": outcome.observed_value}
    if outcome.unexpected_count is None:
        return {}
    found: dict[str, Any] = {"unexpected_count": outcome.unexpected_count}
    if rows is not None:
        share = 100.0 * outcome.unexpected_count / rows if rows else 0.0
        found |= {"element_count": rows, "unexpected_percent": share, "unexpected_percent_total": share}
    if outcome.examples:
        found["partial_unexpected_list"] = list(outcome.examples)
    return found


def describe_results(
    context: Any,
    *,
    run_name: str,
    assets: Mapping[str, str],
    outcomes: Iterable[Any],
    rows: Mapping[str, int],
) -> None:
    """Name each stored validation result's data asset (`assets` by suite) and fill in the
    observed values GX left out (from `outcomes`, the gate's final ones; `rows` by suite for
    the shares), so the pages built from them say what they show."""
    # By suite, check and column: unique in our suites (a stored result's kwargs are its JSON
    # form, so an outcome's own key, with datetimes, would not match it).
    final = {(o.suite, o.expectation, o.kwargs.get("column")): o for o in outcomes}
    store = context.validation_results_store
    for key in store.list_keys():
        result = store.get(key)
        suite = str(result.suite_name).removesuffix("__failed")
        batch_spec = result.meta.get("batch_spec")
        if isinstance(batch_spec, dict):
            batch_spec["data_asset_name"] = assets.get(suite, suite)
        else:
            result.meta["batch_spec"] = {"data_asset_name": assets.get(suite, suite)}
        result.meta["run_name"] = run_name
        for item in result.results:
            config = item.expectation_config
            outcome = final.get((suite, config.type, config.kwargs.get("column")))
            current = dict(item.result or {})
            shown = current.get("observed_value") is not None or current.get("unexpected_percent") is not None
            if outcome is not None and not shown:
                item.result = {**current, **observed(outcome, rows.get(suite))}
        store.set(key, result)
