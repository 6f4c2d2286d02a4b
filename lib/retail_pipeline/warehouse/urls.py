"""Warehouse URLs. Credentials come from the URL or the environment, never from the repo.

duckdb:///relative/file.duckdb    duckdb:////absolute/file.duckdb   (as SQLAlchemy writes them)
postgresql://user[:password]@host[:port]/database[?sslmode=require]
    libpq fills in what is missing from PGHOST, PGPORT, PGUSER, PGPASSWORD, ~/.pgpass
redshift://user[:password]@host[:port]/database?iam_role=arn:aws:iam::...:role/...
    password: REDSHIFT_PASSWORD or PGPASSWORD; iam_role: REDSHIFT_IAM_ROLE;
    manifest_dir (where the COPY manifest is written, s3://...): REDSHIFT_MANIFEST_DIR,
    else `_warehouse_manifests/` beside the loaded files
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from retail_pipeline.warehouse.errors import WarehouseInputError

SCHEMES = ("duckdb", "postgresql", "redshift")
ALIASES = {"postgres": "postgresql"}
REDSHIFT_PARAMS = ("iam_role", "manifest_dir")
REDSHIFT_PORT = 5439


@dataclass(frozen=True)
class WarehouseTarget:
    scheme: str
    url: str = field(repr=False)  # may hold a password: shown only through `display`
    path: str = ""  # duckdb: the database file
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The URL with any password masked, for logs and messages."""
        return mask_password(self.url)


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_warehouse_url(url: str, *, environ: Mapping[str, str] | None = None) -> WarehouseTarget:
    env = os.environ if environ is None else environ
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    scheme = ALIASES.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise WarehouseInputError(
            f"warehouse URL {mask_password(url)!r} must start with one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme == "duckdb":
        return _duckdb(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WarehouseInputError(f"warehouse URL {mask_password(url)!r} is malformed: {error}") from None
    if scheme == "postgresql":
        return WarehouseTarget(scheme, url, host=parts.hostname or "", database=parts.path.lstrip("/"))
    return _redshift(url, parts, port, env)


def _duckdb(url: str) -> WarehouseTarget:
    prefix = "duckdb:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise WarehouseInputError(
            f"DuckDB URL {url!r} must name a file: duckdb:///relative/path.duckdb or duckdb:////abs/path.duckdb"
        )
    return WarehouseTarget("duckdb", url, path=unquote(url[len(prefix) :]))


def _redshift(url: str, parts: SplitResult, port: int | None, env: Mapping[str, str]) -> WarehouseTarget:
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(REDSHIFT_PARAMS))
    if unknown:
        raise WarehouseInputError(
            f"Redshift URL parameter {unknown[0]!r} is unknown (known: {', '.join(REDSHIFT_PARAMS)})"
        )
    params.setdefault("iam_role", env.get("REDSHIFT_IAM_ROLE", ""))
    params.setdefault("manifest_dir", env.get("REDSHIFT_MANIFEST_DIR", ""))
    target = WarehouseTarget(
        "redshift",
        url,
        host=parts.hostname or "",
        port=port or REDSHIFT_PORT,
        database=parts.path.lstrip("/"),
        user=unquote(parts.username or env.get("REDSHIFT_USER", env.get("PGUSER", ""))),
        password=unquote(parts.password or env.get("REDSHIFT_PASSWORD", env.get("PGPASSWORD", ""))),
        params={k: v for k, v in params.items() if v},
    )
    missing = [name for name, value in (("host", target.host), ("database", target.database)) if not value]
    if not target.user:
        missing.append("user (or REDSHIFT_USER)")
    if "iam_role" not in target.params:
        missing.append("iam_role (or REDSHIFT_IAM_ROLE): COPY reads S3 through an IAM role")
    if missing:
        raise WarehouseInputError(f"Redshift URL {target.display!r} lacks {'; '.join(missing)}")
    return target
