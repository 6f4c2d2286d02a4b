"""HadoopFileSystem's copy of a local folder (the Data Docs site) into the job's output."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from retail_pipeline.storage import HadoopFileSystem


def make_site(root: Path) -> Path:
    (root / "static" / "styles").mkdir(parents=True)
    (root / "index.html").write_text("<html>index</html>")
    (root / "static" / "styles" / "site.css").write_text("body {}")
    return root


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_is_copied_whole_and_replaces_the_target(spark: SparkSession, tmp_path: Path) -> None:
    fs = HadoopFileSystem(spark)
    site = make_site(tmp_path / "site")
    target = tmp_path / "out" / "reports" / "data_docs"
    target.mkdir(parents=True)
    (target / "stale.html").write_text("from an earlier copy")

    fs.copy_from_local(str(site), f"file://{target}")

    assert tree(target) == tree(site)
    assert fs.local_file(f"file://{target}") == str(target) == fs.local_file(str(target))


def test_a_file_is_copied_to_a_new_folder(spark: SparkSession, tmp_path: Path) -> None:
    fs = HadoopFileSystem(spark)
    source = make_site(tmp_path / "site") / "index.html"
    target = tmp_path / "new" / "index.html"

    fs.copy_from_local(str(source), str(target))

    assert target.read_text() == "<html>index</html>"
