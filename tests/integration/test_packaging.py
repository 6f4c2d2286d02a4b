"""`make package` (python -m retail_pipeline.packaging) on a clean copy of the sources: the wheel,
the --py-files zip, the Lambda zip and the EMR/Glue definitions that point at them."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

import retail_pipeline
from retail_pipeline.packaging import (
    DEV_PACKAGE,
    LAMBDA_UNZIPPED_LIMIT,
    LAMBDA_ZIP,
    PY_FILES_ZIP,
    RUNTIME_PACKAGE,
    build_py_files_zip,
)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

ARTIFACTS = "s3://example-retail-artifacts/retail-pipeline/0.1.0"
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "dist", "build", "*.egg-info", "__pycache__", ".*_cache", "data", "spark-warehouse"
)
WHEEL = f"retail_pipeline-{retail_pipeline.__version__}-py3-none-any.whl"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/ as `make package` builds it in a checkout holding only what git tracks."""
    checkout = tmp_path_factory.mktemp("clone") / "retail-pipeline"
    shutil.copytree(REPO_ROOT, checkout, ignore=NOT_IN_A_CLONE)
    command = [sys.executable, "-m", "retail_pipeline.packaging", "--artifacts-uri", ARTIFACTS]
    env = {**os.environ, "PYTHONPATH": str(checkout / "lib")}
    result = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (checkout / "build").exists() and not list((checkout / "lib").glob("*.egg-info"))
    return checkout / "dist"


def names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as opened:
        return opened.namelist()


def test_the_manifest_lists_every_artifact_with_its_digest(dist: Path) -> None:
    manifest = json.loads((dist / "manifest.json").read_text())
    assert (manifest["version"], manifest["artifacts_uri"]) == (retail_pipeline.__version__, ARTIFACTS)
    files = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    expected = {WHEEL, PY_FILES_ZIP, LAMBDA_ZIP, "jobs/batch_etl.py", "jobs/warehouse_load.py"}
    expected |= {"configs/emr.yaml", "configs/glue.yaml", "emr/bootstrap.sh", "emr-requirements.txt"}
    expected |= {"constraints.txt"}
    assert expected | {"emr-add-steps.json", "glue-job.json"} <= files
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == entry["sha256"], name


def test_the_wheel_and_the_py_files_zip_hold_every_module_of_the_package(dist: Path) -> None:
    modules = sorted(
        p.relative_to(REPO_ROOT / "lib").as_posix()
        for p in (REPO_ROOT / "lib" / "retail_pipeline").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(n for n in names(dist / WHEEL) if n.endswith(".py")) == modules
    assert names(dist / PY_FILES_ZIP) == modules  # sorted, nothing else


def test_no_artifact_holds_a_dev_tool(dist: Path) -> None:
    dev_modules = [p for p in (REPO_ROOT / "lib" / DEV_PACKAGE).rglob("*.py") if "__pycache__" not in p.parts]
    assert {"synthetic.py", "demo.py", "moto.py"} <= {p.name for p in dev_modules}  # what must stay out
    for archive in (dist / WHEEL, dist / PY_FILES_ZIP, dist / LAMBDA_ZIP):
        tops = {name.split("/")[0] for name in names(archive)}
        assert RUNTIME_PACKAGE in tops and DEV_PACKAGE not in tops, archive.name
        shipped = [n for n in names(archive) if n.startswith(f"{RUNTIME_PACKAGE}/")]
        assert not [n for n in shipped if n.endswith(("/synthetic.py", "/stream/local/__init__.py"))]
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
        assert wheel.read(top_level).decode().split() == [RUNTIME_PACKAGE]


def test_the_runtime_package_never_imports_a_dev_tool() -> None:
    for module in (REPO_ROOT / "lib" / RUNTIME_PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module]
            assert not [i for i in imported if i.split(".")[0] == DEV_PACKAGE], (module, node.lineno)


def test_the_py_files_zip_is_importable_alone_and_reproducible(dist: Path, tmp_path: Path) -> None:
    probe = "import retail_pipeline.cli, retail_pipeline.batch; print(retail_pipeline.cli.__file__)"
    env = {**os.environ, "PYTHONPATH": str(dist / PY_FILES_ZIP)}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(dist / PY_FILES_ZIP / "retail_pipeline" / "cli.py")
    again = build_py_files_zip(REPO_ROOT / "lib", tmp_path / PY_FILES_ZIP)
    assert again.read_bytes() == (dist / PY_FILES_ZIP).read_bytes()


def test_the_lambda_zip_holds_the_handlers_and_their_dependencies_but_no_pyspark(dist: Path) -> None:
    entries = names(dist / LAMBDA_ZIP)
    tops = {name.split("/")[0] for name in entries}
    assert {"retail_pipeline", "aws_lambda_powertools", "jwt", "cryptography", "pyarrow", "boto3"} <= tops
    assert not [top for top in tops if top.startswith(("pyspark", "py4j", "great_expectations"))]
    with zipfile.ZipFile(dist / LAMBDA_ZIP) as archive:
        assert sum(info.file_size for info in archive.infolist()) < LAMBDA_UNZIPPED_LIMIT
        wheels = [archive.read(n).decode() for n in entries if n.endswith(".dist-info/WHEEL")]
    # Lambda's python3.11 runs on Amazon Linux 2 (glibc 2.26): every binary for a glibc no newer.
    for tags in (re.findall(r"^Tag: (\S+)$", text, flags=re.MULTILINE) for text in wheels):
        assert any(t.endswith("-any") or glibc_of(t) <= (2, 26) for t in tags), tags


def glibc_of(tag: str) -> tuple[int, int]:
    """The glibc a manylinux tag needs: manylinux_2_17_x86_64, or the legacy names."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    platform = tag.rsplit("-", 1)[-1]
    for name, version in legacy.items():
        if platform.startswith(f"{name}_"):
            return version
    found = re.match(r"manylinux_(\d+)_(\d+)_", platform)
    return (int(found.group(1)), int(found.group(2))) if found else (99, 0)


@pytest.mark.skipif(
    (platform.machine(), sys.version_info[:2]) != ("x86_64", (3, 11)),
    reason="the Lambda zip's binaries are for CPython 3.11 on x86_64 Linux",
)
def test_the_handlers_import_from_the_lambda_zip_alone(dist: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(dist / LAMBDA_ZIP) as archive:
        archive.extractall(tmp_path / "task")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from retail_pipeline.stream import ingest, process, query;"
        "from retail_pipeline import orchestration;"
        "assert all(callable(m.handler) for m in (ingest, process, query, orchestration));"
        "assert not [m for m in sys.modules if m.startswith('pyspark')];"
        f"import importlib.util; assert importlib.util.find_spec({DEV_PACKAGE!r}) is None;"
        "print(process.__file__)"
    )
    # -S: no site-packages, so nothing but the standard library and the zip's content.
    command = [sys.executable, "-S", "-c", probe, str(tmp_path / "task")]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith(str(tmp_path / "task"))


def s3_uris(value: Any) -> list[str]:
    """The artifact URIs a definition mentions (Glue's module list is comma-separated)."""
    return [uri for uri in re.findall(r"s3://[^\"',\s]+", json.dumps(value)) if uri.startswith(ARTIFACTS)]


def test_the_emr_step_and_the_glue_job_reference_built_artifacts(dist: Path) -> None:
    steps = json.loads((dist / "emr-add-steps.json").read_text())
    job = json.loads((dist / "glue-job.json").read_text())
    referenced = s3_uris(steps) + s3_uris(job)
    assert {f"{ARTIFACTS}/{PY_FILES_ZIP}", f"{ARTIFACTS}/{WHEEL}", f"{ARTIFACTS}/jobs/batch_etl.py"} <= set(
        referenced
    )
    for uri in referenced:
        assert (dist / uri.removeprefix(f"{ARTIFACTS}/")).is_file(), uri
    pins = (dist / "emr-requirements.txt").read_text().split()
    assert {"great-expectations==1.24.1", "numpy==1.26.4"} <= set(pins)  # numpy 2 would break pyspark 3.5
    assert [p for p in pins if p.startswith("boto3==")]  # reads the s3:// config
    assert not [p for p in pins if p.startswith("pyspark")]
    bootstrap = dist / "emr" / "bootstrap.sh"
    assert os.access(bootstrap, os.X_OK)
    assert subprocess.run(["bash", "-n", str(bootstrap)], check=False).returncode == 0


def test_the_stack_s_glue_job_runs_the_same_code_as_the_glue_job_definition(dist: Path) -> None:
    job = json.loads((dist / "glue-job.json").read_text())
    template, _ = decode(str(REPO_ROOT / "infra" / "template.yaml"))
    stack_job = template["Resources"]["BatchJob"]["Properties"]
    bucket, _, prefix = ARTIFACTS.removeprefix("s3://").partition("/")
    values = {
        "ArtifactsBucket": bucket,
        "ArtifactsPrefix": prefix,
        "PackageVersion": retail_pipeline.__version__,
    }

    def rendered(value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(rendered(part) for part in parts)
        return re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], value["Fn::Sub"])

    assert rendered(stack_job["Command"]["ScriptLocation"]) == job["Command"]["ScriptLocation"]
    for key in ("--additional-python-modules", "--config"):
        assert rendered(stack_job["DefaultArguments"][key]) == job["DefaultArguments"][key], key


def test_the_constraints_pin_every_tested_distribution_and_every_install_uses_them(dist: Path) -> None:
    constraints = (dist / "constraints.txt").read_text().split()
    assert all(re.fullmatch(r"[a-z0-9.-]+==[^=\s]+", pin) for pin in constraints), constraints
    names = {pin.split("==")[0] for pin in constraints}
    assert {"great-expectations", "openlineage-python", "pyarrow", "boto3", "numpy", "pyspark"} <= names
    assert "retail-pipeline" not in names
    # EMR: the bootstrap installs its requirements under the constraints.
    bootstrap = (dist / "emr" / "bootstrap.sh").read_text()
    assert "constraints.txt" in bootstrap and '-c "$constraints"' in bootstrap
    # Glue: every module after the wheel is one of the constraints, as pinned there.
    job = json.loads((dist / "glue-job.json").read_text())
    wheel, *modules = job["DefaultArguments"]["--additional-python-modules"].split(",")
    assert wheel.endswith(WHEEL) and modules and set(modules) <= set(constraints)
    # Lambda: what the zip holds is what the constraints say.
    with zipfile.ZipFile(dist / LAMBDA_ZIP) as archive:
        installed = {
            tuple(name.split("/")[0].removesuffix(".dist-info").rsplit("-", 1))
            for name in archive.namelist()
            if name.endswith(".dist-info/METADATA")
        }
    pinned = {pin.split("==")[0].replace("-", "_"): pin.split("==")[1] for pin in constraints}
    for name, version in installed:
        key = name.lower().replace("-", "_").replace(".", "_")
        matches = [v for n, v in pinned.items() if n.replace(".", "_") == key]
        if matches:
            assert matches[0] == version, (name, version, matches)
