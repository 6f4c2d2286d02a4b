"""Per-environment settings: `configs/<env>.yaml` loaded into frozen dataclasses.

Strict on purpose: a missing key, an unknown key or a value of the wrong type stops the job
at start with a message that names the key and the file, instead of a default silently
standing in for a typo. Secrets never live here (they come from the environment or AWS
Secrets Manager).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from retail_pipeline import jvm_tuning

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "local.yaml"
# A config given as an object-store URI is read with boto3 (all three name the same object).
S3_SCHEMES = ("s3://", "s3a://", "s3n://")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class SparkSettings:
    app_name: str
    # None leaves the master to spark-submit, Glue or EMR; only local configs set it.
    master: str | None
    conf: Mapping[str, str] = field(default_factory=dict)
    # Local runs only: a folder for the JVM's class-data-sharing archive of Spark's classes
    # (jvm_tuning.class_data_sharing_options); optional, None turns it off.
    class_data_sharing: str | None = None
    # Local runs only: methods the JIT compiles with C1 alone, never C2, as HotSpot's
    # compiler-directive patterns, package/Class.method with * wildcards
    # (jvm_tuning.c1_only_options); optional.
    jit_c1_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.jit_c1_only:
            if not jvm_tuning.is_method_pattern(pattern):
                raise ConfigError(
                    f"'spark.jit_c1_only': {pattern!r} is not a method pattern like "
                    "org/codehaus/janino/*.* (package/Class.method, * as a wildcard)"
                )


@dataclass(frozen=True)
class BatchSettings:
    # A file, a folder or a glob; local paths, s3:// on EMR and Glue, s3a:// elsewhere.
    input: str
    output: str
    # The input's text encoding: utf-8 (with or without a byte-order mark) or e.g. latin-1.
    encoding: str
    # A file whose last line has no line break is probably cut short: quarantine that line.
    quarantine_unterminated_last_line: bool
    # Process only the input files the output's ledger has not seen as they are now (the
    # daily schedules); otherwise every matched file is processed and replaces its lines.
    incremental: bool = False
    # Publish curated months through the Glue Data Catalog (S3): each run's months under
    # <output>/curated_versions/<run_id>/, the table's partitions switched to them, versions
    # no partition points to removed after version_grace_hours. Unset: months are renamed
    # into <output>/curated/ (local disk, HDFS).
    catalog_database: str | None = None
    catalog_table: str | None = None
    version_grace_hours: int = 24

    def __post_init__(self) -> None:
        if (self.catalog_database is None) != (self.catalog_table is None):
            raise ConfigError(
                "'batch.catalog_database' and 'batch.catalog_table' go together: set both or neither"
            )
        if self.version_grace_hours < 0:
            raise ConfigError("'batch.version_grace_hours' must be 0 or more")


@dataclass(frozen=True)
class QualitySettings:
    # Off only for quick development loops: then nothing checks what is published.
    enabled: bool
    # Bounds of InvoiceDate, "yyyy-MM-dd HH:mm:ss", inclusive: a line outside them is
    # quarantined (invoice_date_out_of_range) and the gate checks the published ones again.
    # Without invoice_ts_max the bound is the run's start plus future_tolerance_hours.
    invoice_ts_min: str
    # A country outside this list is a warning, not a failure.
    known_countries: tuple[str, ...]
    # How many offending values a failed expectation shows in messages and results.
    examples_shown: int
    invoice_ts_max: str | None = None
    future_tolerance_hours: int = 24

    def __post_init__(self) -> None:
        for key in ("invoice_ts_min", "invoice_ts_max"):
            value = getattr(self, key)
            try:
                if value is not None:
                    datetime.fromisoformat(value)
            except ValueError:
                raise ConfigError(f"'quality.{key}' must be a time as yyyy-MM-dd HH:mm:ss") from None
        if self.future_tolerance_hours < 0:
            raise ConfigError("'quality.future_tolerance_hours' must be 0 or more")

    def invoice_ts_bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The accepted InvoiceDate range of a run started at `now` (a naive UTC time)."""
        latest = (
            datetime.fromisoformat(self.invoice_ts_max)
            if self.invoice_ts_max
            else now + timedelta(hours=self.future_tolerance_hours)
        )
        return datetime.fromisoformat(self.invoice_ts_min), latest.replace(microsecond=0)


@dataclass(frozen=True)
class PipelineConfig:
    env: str
    spark: SparkSettings
    batch: BatchSettings
    quality: QualitySettings
    source: str = ""  # where it was loaded from, for messages


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and check a YAML config: a local file (default: configs/local.yaml of this
    checkout) or an S3 object, `s3://bucket/key`, as EMR steps and Glue jobs pass it."""
    if isinstance(path, str) and path.startswith(S3_SCHEMES):
        return parse_config(_read_s3_object(path), source=path)
    config_path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {config_path}: {error.strerror}") from error
    return parse_config(text, source=str(config_path))


def _read_s3_object(uri: str) -> str:
    """The text of s3://bucket/key, read with boto3 before any Spark session exists (the
    session's settings are in the file). Credentials come from the default chain: the
    instance profile on EMR, the job's role on Glue; AWS_ENDPOINT_URL points at a local S3."""
    bucket, _, key = uri.partition("://")[2].partition("/")
    if not bucket or not key:
        raise ConfigError(f"cannot read config file {uri}: expected s3://bucket/key")
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ConfigError(f"cannot read config file {uri}: boto3 is not installed") from None
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as error:
        raise ConfigError(f"cannot read config file {uri}: {error}") from error
    try:
        return str(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {uri}: not UTF-8 text") from None


def parse_config(text: str, *, source: str) -> PipelineConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from error
    config = _build(PipelineConfig, data, source=source, prefix="", skip={"source"})
    return dataclasses.replace(config, source=source)


def _build(
    cls: type, data: Any, *, source: str, prefix: str, skip: frozenset[str] | set[str] = frozenset()
) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if spec.default is not dataclasses.MISSING:
                continue  # an optional key
            raise ConfigError(f"{source}: missing key '{key}'")
        values[name] = _convert(hints[name], data[name], source=source, key=key)
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _convert(hint: Any, value: Any, *, source: str, key: str) -> Any:  # noqa: PLR0911, PLR0912 - one branch per type
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, source=source, prefix=f"{key}.")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _convert(inner, value, source=source, key=key)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ConfigError(f"{source}: '{key}' must be a list of non-empty strings")
        return tuple(value)
    if origin is Mapping or hint is Mapping:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a mapping")
        # Spark settings are strings; YAML would make `true` a bool and `8` an int.
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: '{key}' must be a non-empty string, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be a whole number, not {value!r}")
        return value
    raise ConfigError(f"{source}: '{key}' has a type this loader does not know: {hint!r}")
