"""OpenLineage run events of the batch job and the warehouse load, through the
`openlineage-python` client.

Each run sends START, then COMPLETE (or FAIL with the error, ABORT when another run held the
output): the job (namespace `retail-pipeline`, names `batch` and `warehouse_load`), the input
files and the output datasets with their row counts and schemas. A load names the batch run
it loads as its parent, so Marquez or Amazon DataZone draw batch -> load as one lineage.

Where events go (`LineageSettings.resolve`), any combination:
- a file, JSON Lines appended: --lineage-file or RETAIL_LINEAGE_FILE; by default
  <output>/lineage/openlineage.jsonl when the output is a local folder;
- HTTP (Marquez, or any OpenLineage endpoint): --lineage-url or OPENLINEAGE_URL, with
  OPENLINEAGE_ENDPOINT (default api/v1/lineage) and OPENLINEAGE_API_KEY;
- Amazon DataZone: RETAIL_LINEAGE_DATAZONE_DOMAIN (its PostLineageEvent API, with boto3).

OpenLineage wants a UUID per run; ours is the job's run id (a time stamp, Glue's JOB_RUN_ID),
so the event's runId is a UUID derived from it (`openlineage_run_id`) and the run id itself is
the `retail_run` run facet. Lineage never fails a run: an event that cannot be sent is logged.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)

from retail_pipeline import __version__, rules

if TYPE_CHECKING:
    from retail_pipeline.report import RunReport
    from retail_pipeline.warehouse.files import RunSummary
    from retail_pipeline.warehouse.loader import LoadResult

logger = logging.getLogger(__name__)

NAMESPACE = "retail-pipeline"
BATCH_JOB = "batch"
LOAD_JOB = "warehouse_load"
PRODUCER = f"urn:retail-pipeline:{__version__}"
DEFAULT_ENDPOINT = "api/v1/lineage"
HTTP_TIMEOUT_SECONDS = 5.0
FILE_VARIABLE = "RETAIL_LINEAGE_FILE"
DATAZONE_VARIABLE = "RETAIL_LINEAGE_DATAZONE_DOMAIN"
LOCAL_FILE = "lineage/openlineage.jsonl"  # under a local output folder
# The derived run UUIDs: the same job and run id always give the same UUID.
RUN_UUID_NAMESPACE = uuid.UUID("5b0e4b1e-6f2a-4c33-9a57-3d1c0c7f3a10")
FACT_TABLE = "fact_sales"


@attr.define
class RetailRunFacet(RunFacet):
    """The pipeline's own run id and outcome, as its reports and logs name them."""

    run_id: str
    status: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return "urn:retail-pipeline:facets:RetailRunFacet"


@dataclass(frozen=True)
class LineageSettings:
    file: str | None = None
    url: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = field(default=None, repr=False)
    datazone_domain: str | None = None
    namespace: str = NAMESPACE

    @property
    def enabled(self) -> bool:
        return bool(self.file or self.url or self.datazone_domain)

    @classmethod
    def resolve(
        cls,
        *,
        file: str | None = None,
        url: str | None = None,
        output: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LineageSettings:
        """The flags' values over the environment's; a local output gets a file by default."""
        env = os.environ if environ is None else environ
        chosen_file = file or env.get(FILE_VARIABLE) or None
        if chosen_file is None and output and _is_local(output):
            chosen_file = os.path.join(output.removeprefix("file://").rstrip("/"), LOCAL_FILE)
        return cls(
            file=chosen_file,
            url=url or env.get("OPENLINEAGE_URL") or None,
            endpoint=env.get("OPENLINEAGE_ENDPOINT") or DEFAULT_ENDPOINT,
            api_key=env.get("OPENLINEAGE_API_KEY") or None,
            datazone_domain=env.get(DATAZONE_VARIABLE) or None,
            namespace=env.get("OPENLINEAGE_NAMESPACE") or NAMESPACE,
        )

    def client(self) -> OpenLineageClient:
        transports: dict[str, dict[str, Any]] = {}
        if self.file:
            os.makedirs(os.path.dirname(os.path.abspath(self.file)), exist_ok=True)
            transports["file"] = {"type": "file", "log_file_path": self.file, "append": True}
        if self.url:
            # Two quick retries: a lineage endpoint that is down costs a run seconds, not minutes.
            http: dict[str, Any] = {
                "type": "http",
                "url": self.url,
                "endpoint": self.endpoint,
                "timeout": HTTP_TIMEOUT_SECONDS,
                "retry": {"total": 2, "read": 2, "connect": 2, "backoff_factor": 0.2},
            }
            if self.api_key:
                http["auth"] = {"type": "api_key", "apiKey": self.api_key}
            transports["http"] = http
        if self.datazone_domain:
            transports["datazone"] = {"type": "amazon_datazone_api", "domainId": self.datazone_domain}
        if len(transports) == 1:
            (transport,) = transports.values()
        else:
            transport = {
                "type": "composite",
                "transports": transports,
                "continue_on_failure": True,
                "continue_on_success": True,
            }
        return OpenLineageClient(config={"transport": transport})


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def openlineage_run_id(job: str, run_id: str) -> str:
    return str(uuid.uuid5(RUN_UUID_NAMESPACE, f"{NAMESPACE}/{job}/{run_id}"))


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a file or folder by OpenLineage's naming: s3://bucket + key for
    S3 (s3a:// and s3n:// are the same objects), file + absolute path for local files."""
    parts = urlsplit(uri)
    if parts.scheme in ("s3", "s3a", "s3n"):
        return f"s3://{parts.netloc}", parts.path.strip("/") or "/"
    if parts.scheme in ("", "file"):
        return "file", os.path.abspath(parts.path if parts.scheme else uri)
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"


def warehouse_dataset(warehouse: str, table: str = FACT_TABLE) -> tuple[str, str]:
    """(namespace, name) of a warehouse table: the database's address, then database.table
    (DuckDB: the file)."""
    parts = urlsplit(warehouse)
    scheme = parts.scheme.lower()
    if scheme == "duckdb":
        return "duckdb", f"{os.path.abspath(warehouse.removeprefix('duckdb:///'))}.{table}"
    host = parts.hostname or parts.netloc or "default"
    port = f":{parts.port}" if parts.port else ""
    database = parts.path.strip("/") or "default"
    kind = {"postgresql": "postgres", "redshift-data": "redshift"}.get(scheme, scheme)
    return f"{kind}://{host}{port}", f"{database}.public.{table}"


@dataclass(frozen=True)
class Dataset:
    namespace: str
    name: str
    rows: int | None = None
    fields: Sequence[tuple[str, str]] = ()

    @classmethod
    def at(cls, uri: str, *, rows: int | None = None, fields: Sequence[tuple[str, str]] = ()) -> Dataset:
        namespace, name = dataset_name(uri)
        return cls(namespace, name, rows, fields)

    def _facets(self) -> dict[str, Any]:
        if not self.fields:
            return {}
        columns = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in self.fields]
        return {"schema": schema_dataset.SchemaDatasetFacet(fields=columns, producer=PRODUCER)}

    def as_input(self) -> InputDataset:
        input_facets: dict[str, Any] = {}
        if self.rows is not None:
            input_facets["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=self.rows, producer=PRODUCER
            )
        return InputDataset(self.namespace, self.name, facets=self._facets(), inputFacets=input_facets)

    def as_output(self) -> OutputDataset:
        output_facets: dict[str, Any] = {}
        if self.rows is not None:
            stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
            output_facets["outputStatistics"] = stats(rowCount=self.rows, producer=PRODUCER)
        return OutputDataset(self.namespace, self.name, facets=self._facets(), outputFacets=output_facets)


def raw_fields() -> list[tuple[str, str]]:
    return [(column, "string") for column in rules.RAW_COLUMNS]


def curated_fields() -> list[tuple[str, str]]:
    """The curated columns and their types, from the files' contract (partition columns too)."""
    try:  # pyarrow: everywhere the package runs but a bare Glue job may lack it
        from retail_pipeline.warehouse.files import CURATED_SCHEMA
    except ImportError:
        return [(column, "") for column in rules.CURATED_COLUMNS]
    fields = [(f.name, str(f.type)) for f in CURATED_SCHEMA]
    return fields + [(column, "int32") for column in rules.PARTITION_COLUMNS]


def batch_datasets(report: RunReport) -> tuple[list[Dataset], list[Dataset]]:
    """A batch run's inputs (the files it read) and outputs (the curated lines it published,
    the quarantine), with their row counts."""
    inputs = [Dataset.at(path, fields=raw_fields()) for path in report.inputs]
    curated = Dataset.at(report.outputs.get("curated", f"{report.output}/curated"))
    quarantine = Dataset.at(report.outputs.get("quarantine", f"{report.output}/quarantine"))
    outputs = [
        Dataset(curated.namespace, curated.name, report.published, curated_fields()),
        Dataset(quarantine.namespace, quarantine.name, sum(report.quarantined.values())),
    ]
    return inputs, outputs


def load_source(output: str, run: RunSummary | None = None) -> str:
    """What a load reads: a batch run's curated root (its version folder on S3), else the
    output's curated folder."""
    root = run.curated_root if run is not None else "curated"
    return f"{output.rstrip('/')}/{root}"


def load_datasets(
    source_uri: str, warehouse: str, result: LoadResult | None = None
) -> tuple[list[Dataset], list[Dataset]]:
    """A load's input (curated lines: a batch run's, the output's, the streamed ones) and
    output (the warehouse's fact table), with the lines loaded."""
    source = Dataset.at(source_uri, fields=curated_fields())
    table_namespace, table_name = warehouse_dataset(warehouse)
    rows = result.rows if result is not None else None
    return (
        [Dataset(source.namespace, source.name, rows, source.fields)],
        [Dataset(table_namespace, table_name, rows)],
    )


class RunLineage:
    """The events of one run of one job. Every send is best effort (see the module doc)."""

    def __init__(
        self,
        settings: LineageSettings,
        *,
        job: str,
        run_id: str,
        integration: str = "PYTHON",
        engine: tuple[str, str] | None = None,
        parent: tuple[str, str] | None = None,
        client: OpenLineageClient | None = None,
    ) -> None:
        self.settings = settings
        self.job = job
        self.run_id = run_id
        self.integration = integration
        self.engine = engine  # (name, version), e.g. ("spark", "3.5.6")
        self.parent = parent  # (job, run id) of the run this one follows from
        self._client = client
        self.sent: list[RunEvent] = []

    @property
    def enabled(self) -> bool:
        return self._client is not None or self.settings.enabled

    def start(self, inputs: Sequence[Dataset] = (), outputs: Sequence[Dataset] = ()) -> None:
        self._send(RunState.START, inputs, outputs)

    def complete(
        self, inputs: Sequence[Dataset] = (), outputs: Sequence[Dataset] = (), *, status: str | None = None
    ) -> None:
        self._send(RunState.COMPLETE, inputs, outputs, status=status)

    def fail(
        self,
        error: BaseException,
        inputs: Sequence[Dataset] = (),
        outputs: Sequence[Dataset] = (),
        *,
        status: str | None = None,
    ) -> None:
        trace = "".join(traceback.format_exception(error))
        facet = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}",
            programmingLanguage="python",
            stackTrace=trace,
            producer=PRODUCER,
        )
        self._send(RunState.FAIL, inputs, outputs, status=status or "failed", extra={"errorMessage": facet})

    def abort(self, reason: str) -> None:
        self._send(RunState.ABORT, (), (), status=reason)

    def event(
        self,
        state: RunState,
        inputs: Sequence[Dataset],
        outputs: Sequence[Dataset],
        *,
        status: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunEvent:
        facets: dict[str, Any] = {
            "retail_run": RetailRunFacet(run_id=self.run_id, status=status, producer=PRODUCER)
        }
        if self.engine is not None:
            facets["processing_engine"] = processing_engine_run.ProcessingEngineRunFacet(
                version=self.engine[1], name=self.engine[0], producer=PRODUCER
            )
        if self.parent is not None:
            parent_job, parent_run_id = self.parent
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=openlineage_run_id(parent_job, parent_run_id)),
                job=parent_run.Job(namespace=self.settings.namespace, name=parent_job),
                producer=PRODUCER,
            )
        facets |= dict(extra or {})
        job_type = job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=self.integration, jobType="JOB", producer=PRODUCER
        )
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=openlineage_run_id(self.job, self.run_id), facets=facets),
            job=Job(namespace=self.settings.namespace, name=self.job, facets={"jobType": job_type}),
            inputs=[d.as_input() for d in inputs],
            outputs=[d.as_output() for d in outputs],
            producer=PRODUCER,
        )

    def _send(
        self,
        state: RunState,
        inputs: Sequence[Dataset],
        outputs: Sequence[Dataset],
        *,
        status: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not self.enabled:
            return
        try:
            event = self.event(state, inputs, outputs, status=status, extra=extra)
            if self._client is None:
                self._client = self.settings.client()
            self._client.emit(event)
            self.sent.append(event)
        except Exception as error:  # lineage is best effort: never fail the run for it
            logger.warning("OpenLineage %s event of %s not sent: %s", state.value, self.job, error)
