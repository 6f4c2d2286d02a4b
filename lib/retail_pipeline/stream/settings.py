"""Handler settings: environment variables read into small frozen dataclasses.

Every handler reads its settings at the start of each invocation (a few dictionary look-ups),
so nothing read once can go stale in a warm container. A missing or malformed variable stops
the invocation with a message that names it. The same names are set on the Lambda functions
on AWS and by the local runtime (`retail_pipeline_dev.stream_local`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from retail_pipeline import limits

DEFAULT_MAX_BODY_BYTES = limits.REQUEST_MAX_BYTES
# How long the pool's public keys are trusted before they are fetched again.
DEFAULT_JWKS_CACHE_SECONDS = 300
DEFAULT_CURATED_PREFIX = "streamed/curated"
DEFAULT_DEAD_LETTER_PREFIX = "streamed/dead_letter"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise SettingsError(f"environment variable {name} must be a positive whole number, not {text!r}")
    return int(text)


def _prefix(environ: Mapping[str, str], name: str, default: str) -> str:
    prefix = environ.get(name, "").strip().strip("/") or default
    return prefix


@dataclass(frozen=True)
class AwsSettings:
    region: str
    # Only for local runs (moto); None on AWS. Same variable boto3 itself honours.
    endpoint_url: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AwsSettings:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
        if not region:
            raise SettingsError("environment variable AWS_REGION is not set")
        return cls(region=region, endpoint_url=environ.get("AWS_ENDPOINT_URL") or None)


@dataclass(frozen=True)
class AuthSettings:
    """What an access token of the Cognito user pool must satisfy."""

    # https://cognito-idp.<region>.amazonaws.com/<user pool id>
    issuer: str
    jwks_url: str
    client_ids: frozenset[str]
    jwks_cache_seconds: int = DEFAULT_JWKS_CACHE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthSettings:
        issuer = _required(environ, "COGNITO_ISSUER").rstrip("/")
        jwks_url = environ.get("COGNITO_JWKS_URL", "").strip() or f"{issuer}/.well-known/jwks.json"
        client_ids = frozenset(
            part.strip() for part in _required(environ, "COGNITO_CLIENT_IDS").split(",") if part.strip()
        )
        if not client_ids:
            raise SettingsError("environment variable COGNITO_CLIENT_IDS names no app client")
        return cls(
            issuer=issuer,
            jwks_url=jwks_url,
            client_ids=client_ids,
            jwks_cache_seconds=_positive_int(
                environ, "COGNITO_JWKS_CACHE_SECONDS", DEFAULT_JWKS_CACHE_SECONDS
            ),
        )


@dataclass(frozen=True)
class IngestSettings:
    aws: AwsSettings
    auth: AuthSettings
    stream_name: str
    max_body_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestSettings:
        return cls(
            aws=AwsSettings.from_env(environ),
            auth=AuthSettings.from_env(environ),
            stream_name=_required(environ, "TRANSACTIONS_STREAM"),
            max_body_bytes=_positive_int(environ, "INGEST_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )


@dataclass(frozen=True)
class ProcessSettings:
    aws: AwsSettings
    table_name: str
    bucket: str
    curated_prefix: str
    dead_letter_prefix: str
    # Rejects may go to a bucket of their own (AWS: the quarantine bucket); None: `bucket`.
    dead_letter_bucket: str | None = None

    @property
    def rejects_bucket(self) -> str:
        return self.dead_letter_bucket or self.bucket

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProcessSettings:
        return cls(
            aws=AwsSettings.from_env(environ),
            table_name=_required(environ, "TRANSACTIONS_TABLE"),
            bucket=_required(environ, "CURATED_BUCKET"),
            curated_prefix=_prefix(environ, "CURATED_PREFIX", DEFAULT_CURATED_PREFIX),
            dead_letter_prefix=_prefix(environ, "DEAD_LETTER_PREFIX", DEFAULT_DEAD_LETTER_PREFIX),
            dead_letter_bucket=environ.get("DEAD_LETTER_BUCKET", "").strip() or None,
        )


@dataclass(frozen=True)
class QuerySettings:
    aws: AwsSettings
    auth: AuthSettings
    table_name: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QuerySettings:
        return cls(
            aws=AwsSettings.from_env(environ),
            auth=AuthSettings.from_env(environ),
            table_name=_required(environ, "TRANSACTIONS_TABLE"),
        )
