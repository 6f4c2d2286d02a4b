"""The deployable artifacts, built into dist/ by `python -m retail_pipeline.packaging` (`make package`).

    retail_pipeline-<version>-py3-none-any.whl  the package, for pip and Glue's --additional-python-modules
    retail_pipeline.zip           the package for `spark-submit --py-files` (EMR) or Glue's --extra-py-files
    retail_pipeline_lambda.zip    the stream handlers and their dependencies for Lambda (python3.11,
                                  x86_64); no pyspark
    jobs/, configs/, emr/         the entry points, the EMR and Glue configs, the EMR bootstrap
    constraints.txt               the exact version of every third-party distribution the tests ran
                                  with (this environment's), for pip's --constraint
    emr-requirements.txt          third-party pins the EMR bootstrap installs (Spark is EMR's own),
                                  with constraints.txt
    emr-add-steps.json            `aws emr add-steps --cli-input-json file://dist/emr-add-steps.json`
    glue-job.json                 `aws glue create-job --cli-input-json file://dist/glue-job.json`
    manifest.json                 size and SHA-256 of every file

What ships is the `retail_pipeline` package alone: the dev tools (lib/retail_pipeline_dev: the
synthetic generator, the local AWS) are in none of the three packages, and a build that finds
them there fails.

`aws s3 sync dist/ <artifacts-uri>/` puts them where the two definitions (and infra/template.yaml,
with ArtifactsPrefix = the URI's key prefix) expect them. The zips are reproducible: sorted
entries, fixed time-stamps.

Installs are reproducible too: the EMR bootstrap installs with `-c constraints.txt`, the Lambda
zip is built with it, and the Glue job's --additional-python-modules names the wheel and every
distribution of its batch closure at its exact version (Glue's pip reads no constraints file).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retail_pipeline.config import REPO_ROOT, load_config
from retail_pipeline.glue import additional_python_modules, emr_add_steps, glue_job

WHEEL_GLOB = "retail_pipeline-*-py3-none-any.whl"
WHEEL_SOURCES = ("setup.py", "README.md", "pyproject.toml")  # with lib/: all setup.py reads
PY_FILES_ZIP = "retail_pipeline.zip"
RUNTIME_PACKAGE = "retail_pipeline"
DEV_PACKAGE = "retail_pipeline_dev"  # lib/'s dev tools: setup.py leaves them out
LAMBDA_ZIP = "retail_pipeline_lambda.zip"
# Lambda's python3.11 runtime runs on Amazon Linux 2 (glibc 2.26): manylinux2014 wheels only.
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_PYTHON = "3.11"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # the quota for a function's code, layers included
# Parts of the dependencies no handler loads: C headers, test suites, byte code.
LAMBDA_PRUNED = ("pyarrow/include", "pyarrow/tests", "pyarrow/src")
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
PLACEHOLDER_ARTIFACTS = "s3://example-retail-artifacts/retail-pipeline"
PLACEHOLDER_TEMP_DIR = "s3://example-retail-reports/tmp/glue/"
DEPLOYED_CONFIGS = ("emr.yaml", "glue.yaml")
CONSTRAINTS = "constraints.txt"
# The extras whose closure the constraints pin: what the tests install and run.
TESTED_EXTRAS = ("spark", "batch", "warehouse", "stream")
# Provided by the platform (Glue, EMR): never pinned for them.
PLATFORM_SPARK = ("pyspark", "py4j")


class PackagingError(RuntimeError):
    """An artifact could not be built, or is not what it must be."""


def build_wheel(source: Path, dist: Path) -> Path:
    """`pip wheel` of the project at `source`; the wheel's name carries the version. Built from
    a copy of the sources, so the checkout gets no build/ or egg-info and nothing stale in them
    can slip into the wheel."""
    with tempfile.TemporaryDirectory() as scratch:
        tree, wheels = Path(scratch) / "source", Path(scratch) / "wheels"
        tree.mkdir()
        for name in WHEEL_SOURCES:
            shutil.copy2(source / name, tree / name)
        ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        shutil.copytree(source / "lib", tree / "lib", ignore=ignored)
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        _run([*pip_wheel, "--wheel-dir", str(wheels), str(tree)])
        (wheel,) = wheels.glob(WHEEL_GLOB)
        return Path(shutil.copy2(wheel, dist / wheel.name))


def build_py_files_zip(lib: Path, target: Path) -> Path:
    """The package's Python sources, as `--py-files` wants them: retail_pipeline/ at the root."""
    package = lib / RUNTIME_PACKAGE
    files = [path for path in package.rglob("*.py") if "__pycache__" not in path.parts]
    return write_zip(target, ((path, path.relative_to(lib).as_posix()) for path in files))


def build_lambda_zip(wheel: Path, target: Path, *, constraints_file: Path | None = None) -> Path:
    """The wheel with its `stream` extra installed for Lambda's platform, zipped.

    pip resolves the pins from the wheel's own metadata (setup.py's STREAM list), each
    distribution at its version in `constraints_file`, picking manylinux2014 binaries whatever
    machine builds it."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        constrained = ["--constraint", str(constraints_file)] if constraints_file else []
        _run(
            [
                *(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(root)),
                *("--platform", LAMBDA_PLATFORM, "--implementation", "cp"),
                *("--python-version", LAMBDA_PYTHON, "--only-binary=:all:"),
                *constrained,
                f"{wheel}[stream]",
            ]
        )
        if (root / "pyspark").exists():
            raise PackagingError("pyspark ended up in the Lambda package: check the stream extra")
        for pruned in LAMBDA_PRUNED:
            shutil.rmtree(root / pruned, ignore_errors=True)
        files = sorted(path for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
        unzipped = sum(path.stat().st_size for path in files)
        if unzipped > LAMBDA_UNZIPPED_LIMIT:
            raise PackagingError(f"the Lambda package is {unzipped:,} bytes unzipped, over Lambda's 250 MB")
        return write_zip(target, ((path, path.relative_to(root).as_posix()) for path in files))


def check_no_dev_tools(archive: Path) -> None:
    """Stop the build if `archive` (a wheel or zip) holds a module of the dev tools."""
    with zipfile.ZipFile(archive) as opened:
        shipped = [name for name in opened.namelist() if name.split("/")[0] == DEV_PACKAGE]
    if shipped:
        raise PackagingError(f"{archive.name} holds dev tools ({shipped[0]}, ...): check setup.py's packages")


def write_zip(target: Path, entries: Iterable[tuple[Path, str]]) -> Path:
    """A zip of (file, name) entries, sorted by name with fixed time-stamps: the same inputs
    give the same bytes. Executable bits are kept (Lambda needs them on binaries)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path, name in sorted(entries, key=lambda entry: entry[1]):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            archive.writestr(info, path.read_bytes())
    return target


def requirements(
    wheel: Path,
    extras: Sequence[str],
    *,
    core: bool = True,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """The wheel's own pins (its Requires-Dist lines): the core ones unless `core` is False and
    those of the given extras; `only` and `exclude` filter by project name."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode("utf-8")
    pins: list[str] = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = (part.strip() for part in line.removeprefix("Requires-Dist:").partition(";"))
        extra = marker.partition("==")[2].strip().strip("'\"") if marker.startswith("extra") else None
        wanted = extra in extras if extra is not None else core
        name = re.split(r"[\[=<>!~ ]", requirement, maxsplit=1)[0].lower()
        if wanted and (not only or name in only) and name not in exclude and requirement not in pins:
            pins.append(requirement)
    return pins


def installed_closure(requirements: Sequence[str]) -> dict[str, str]:
    """Every distribution the requirements need, transitively, at the version installed in
    this environment (the one the tests ran in): {canonical name: version}. Markers are
    evaluated for this interpreter (CPython 3.11 on Linux, as Glue 5, EMR 7 and Lambda run);
    a requirement nothing here satisfies stops the build."""
    found: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise PackagingError(f"{requirement} is not installed here: install '.[dev]' first") from None
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise PackagingError(
                f"{requirement} does not hold for the installed {name} {distribution.version}"
            )
        found[name] = distribution.version
        extras = requirement.extras or {""}
        for text in distribution.requires or []:
            needed = Requirement(text)
            # evaluate() fills in this interpreter's environment around the extra.
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)
    return found


def pins(closure: dict[str, str], *, exclude: Sequence[str] = ()) -> list[str]:
    skipped = {canonicalize_name(name) for name in exclude}
    return [f"{name}=={version}" for name, version in sorted(closure.items()) if name not in skipped]


def constraints(wheel: Path) -> list[str]:
    """The exact versions of the wheel's tested closure (core and TESTED_EXTRAS), itself excluded."""
    closure = installed_closure(requirements(wheel, TESTED_EXTRAS))
    return pins(closure, exclude=["retail-pipeline"])


def glue_modules(wheel: Path) -> list[str]:
    """Glue's pins: the batch job's closure (core and the batch extra) at the tested versions,
    without the Spark Glue provides."""
    return glue_pins(requirements(wheel, ["batch"]))


def glue_pins(batch_requirements: Sequence[str]) -> list[str]:
    closure = installed_closure(batch_requirements)
    return pins(closure, exclude=[*PLATFORM_SPARK, "retail-pipeline"])


def installed_requirements(extras: Sequence[str]) -> list[str]:
    """The installed package's own requirements (its core ones and those of `extras`), as a
    wheel built from this checkout would declare them (pip install -e . records them)."""
    found = []
    for text in importlib.metadata.distribution("retail-pipeline").requires or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
            found.append(str(requirement).split(";")[0].strip())
    return found


def emr_requirements(wheel: Path) -> list[str]:
    """What the EMR bootstrap installs for Python 3.11: the batch job's pins without pyspark
    (EMR has Spark), and boto3, which reads an s3:// config before Spark starts."""
    batch = requirements(wheel, ["spark", "batch"], exclude=["pyspark"])
    return batch + requirements(wheel, ["stream"], core=False, only=["boto3"])


def build(dist: Path, *, artifacts_uri: str, source: Path = REPO_ROOT) -> dict[str, dict[str, object]]:
    """Every artifact into `dist` (emptied first); returns the manifest."""
    if dist.resolve() in (source.resolve(), *source.resolve().parents):
        raise PackagingError(f"refusing to empty {dist}: it holds the sources")
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    wheel = build_wheel(source, dist)
    version = wheel.name.split("-")[1]
    build_py_files_zip(source / "lib", dist / PY_FILES_ZIP)
    (dist / CONSTRAINTS).write_text("\n".join(constraints(wheel)) + "\n", encoding="utf-8")
    build_lambda_zip(wheel, dist / LAMBDA_ZIP, constraints_file=dist / CONSTRAINTS)
    for archive in (wheel, dist / PY_FILES_ZIP, dist / LAMBDA_ZIP):
        check_no_dev_tools(archive)
    (dist / "jobs").mkdir()
    for job_script in sorted((source / "jobs").glob("*.py")):
        shutil.copy2(job_script, dist / "jobs" / job_script.name)
    (dist / "configs").mkdir()
    for config in DEPLOYED_CONFIGS:
        shutil.copy2(source / "configs" / config, dist / "configs" / config)
    shutil.copytree(source / "infra" / "emr", dist / "emr")
    (dist / "emr-requirements.txt").write_text("\n".join(emr_requirements(wheel)) + "\n", encoding="utf-8")
    emr = load_config(source / "configs" / "emr.yaml").batch
    glue = load_config(source / "configs" / "glue.yaml").batch
    steps = emr_add_steps(artifacts_uri, input_uri=emr.input, output_uri=emr.output)
    modules = additional_python_modules(f"{artifacts_uri}/{wheel.name}", glue_modules(wheel))
    job = glue_job(
        artifacts_uri,
        modules,
        version=version,
        input_uri=glue.input,
        output_uri=glue.output,
        temp_dir=PLACEHOLDER_TEMP_DIR,
    )
    _write_json(dist / "emr-add-steps.json", steps)
    _write_json(dist / "glue-job.json", job)
    manifest = {
        path.relative_to(dist).as_posix(): {
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        for path in sorted(dist.rglob("*"))
        if path.is_file()
    }
    _write_json(
        dist / "manifest.json", {"version": version, "artifacts_uri": artifacts_uri, "files": manifest}
    )
    return manifest


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(f"{' '.join(command[:5])} ... failed:\n{result.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retail_pipeline.packaging", description=__doc__)
    parser.add_argument("--dist", default="dist", help="output folder, emptied first (default: dist)")
    parser.add_argument(
        "--artifacts-uri",
        default=os.environ.get("ARTIFACTS_URI") or PLACEHOLDER_ARTIFACTS,
        help="where dist/ will be uploaded, s3://bucket/prefix (default: $ARTIFACTS_URI, else a placeholder)",
    )
    args = parser.parse_args(argv)
    if not args.artifacts_uri.startswith("s3://"):
        parser.error("--artifacts-uri must be s3://bucket/prefix")
    try:
        manifest = build(Path(args.dist).resolve(), artifacts_uri=args.artifacts_uri.rstrip("/"))
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, entry in manifest.items():
        print(f"{entry['bytes']:>12,}  {args.dist}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
