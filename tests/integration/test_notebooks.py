"""The notebooks cannot rot: the Jupyter notebook runs on a fresh run of the committed sample and
draws its charts; the Zeppelin note is a valid note whose code imports only the package and
whose queries are the package's, giving on Spark what DuckDB gives."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient
from pyspark.sql import DataFrame, SparkSession

from retail_pipeline import analytics
from retail_pipeline.warehouse import load_run
from tests.conftest import REPO_ROOT, writable_copy

pytestmark = pytest.mark.integration

NOTEBOOKS = REPO_ROOT / "notebooks"
JUPYTER = NOTEBOOKS / "retail_analysis.ipynb"
ZEPPELIN = NOTEBOOKS / "online_retail_analysis_2RETAILAN.zpln"
INTERPRETERS = ("%md", "%spark.conf", "%pyspark", "%sql")


@pytest.fixture(scope="module")
def sample_output(sample_run: tuple[Any, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make run` on the committed sample: curated Parquet and the DuckDB warehouse."""
    output = writable_copy(sample_run[1], tmp_path_factory.mktemp("notebook_sample") / "output")
    load_run(f"duckdb:///{output}/warehouse.duckdb", str(output))
    return output


@pytest.fixture(scope="module")
def duckdb_curated(sample_output: Path) -> Iterator[Any]:
    connection = duckdb.connect()
    analytics.register_duckdb(connection, str(sample_output / "curated"))
    yield connection
    connection.close()


def test_the_jupyter_notebook_runs_on_the_sample_and_draws_its_charts(
    sample_output: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(JUPYTER, as_version=4)
    assert not [cell for cell in notebook.cells if cell.get("outputs")], "commit the notebook without outputs"
    monkeypatch.setenv("RETAIL_OUTPUT", str(sample_output))
    # The kernel imports the package as an installed one (make install: pip install -e).
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT / "lib"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    ).execute()
    nbformat.write(notebook, tmp_path / JUPYTER.name)  # kept for a look when the test fails

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output["output_type"] == "error"]
    charts = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(charts) == 4  # month, country, products, RFM segments
    printed = "".join(output.get("text", "") for output in outputs if output["output_type"] == "stream")
    assert "1 month(s) reconciled; revenue 184239.8300" in printed


def zeppelin_paragraphs() -> list[tuple[str, str]]:
    """(interpreter, body) of each paragraph of the note."""
    note = json.loads(ZEPPELIN.read_text())
    assert note["defaultInterpreterGroup"] == "spark" and note["name"]
    assert ZEPPELIN.stem.endswith(f"_{note['id']}")  # Zeppelin's file name: <name>_<id>.zpln
    ids = [p["id"] for p in note["paragraphs"]]
    assert len(set(ids)) == len(ids)
    found = []
    for paragraph in note["paragraphs"]:
        assert {"id", "text", "config", "settings", "status"} <= set(paragraph)
        interpreter, _, body = paragraph["text"].partition("\n")
        assert interpreter in INTERPRETERS, interpreter
        found.append((interpreter, body))
    return found


def test_the_zeppelin_note_is_valid_and_its_code_imports_only_the_package() -> None:
    paragraphs = zeppelin_paragraphs()
    code = [body for interpreter, body in paragraphs if interpreter == "%pyspark"]
    assert code
    for body in code:
        imports = [
            node for node in ast.walk(ast.parse(body)) if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        modules = [alias.name for node in imports if isinstance(node, ast.Import) for alias in node.names]
        modules += [node.module or "" for node in imports if isinstance(node, ast.ImportFrom)]
        assert modules and all(module.split(".")[0] == "retail_pipeline" for module in modules), modules
    queries = [body for interpreter, body in paragraphs if interpreter == "%sql"]
    assert sorted(queries) == sorted(analytics.CURATED_QUERIES.values())


class ZeppelinContext:
    """The `z` of a Zeppelin %pyspark paragraph: forms answer their defaults, or given values."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.shown: list[DataFrame] = []

    def textbox(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def show(self, frame: DataFrame) -> None:
        self.shown.append(frame)


def rows(values: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Spark's SUM of DECIMAL(23,4) is DECIMAL(33,4), DuckDB's DECIMAL(38,4): compare values."""
    return [tuple(Decimal(v) if isinstance(v, Decimal) else v for v in row) for row in values]


def test_the_zeppelin_paragraphs_give_on_spark_what_duckdb_gives(
    spark: SparkSession, sample_output: Path, duckdb_curated: Any
) -> None:
    z = ZeppelinContext({"curated": str(sample_output / "curated")})
    paragraphs = zeppelin_paragraphs()
    for interpreter, body in paragraphs:
        if interpreter == "%pyspark":
            exec(compile(body, ZEPPELIN.name, "exec"), {"spark": spark, "z": z})
    assert [frame.count() for frame in z.shown] == [1]  # revenue by month: one month in the sample
    for interpreter, body in paragraphs:
        if interpreter == "%sql":
            on_spark = [tuple(row) for row in spark.sql(body).collect()]
            assert on_spark, body
            assert rows(on_spark) == rows(duckdb_curated.sql(body).fetchall()), body.splitlines()[0]


def test_the_rfm_segments_cover_every_known_customer_once(duckdb_curated: Any) -> None:
    customers = duckdb_curated.sql(analytics.CUSTOMER_RFM).fetchall()
    segments = duckdb_curated.sql(analytics.RFM_SEGMENTS).fetchall()
    known_customers = "SELECT COUNT(DISTINCT customer_id), SUM(revenue) FROM curated_invoice_lines"
    (known,) = duckdb_curated.sql(f"{known_customers} WHERE customer_id <> 'Unknown'").fetchall()
    assert len(customers) == sum(row[1] for row in segments) == known[0]
    assert sum(row[2] for row in segments) == known[1]
    for _, recency, frequency, _, *scores, segment in customers:
        assert recency >= 1 and frequency >= 1 and all(1 <= score <= 5 for score in scores)
        r_score, f_score, _ = scores
        if segment == "Champions":
            assert r_score >= 4 and f_score >= 4
