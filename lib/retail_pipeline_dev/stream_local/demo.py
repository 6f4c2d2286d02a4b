"""`make stream-demo`: the streaming path end to end on this machine, on the committed sample.

moto server (S3, Kinesis, DynamoDB, Cognito) -> resources -> HTTP front (the API) and poller
(the event source mapping) -> sign up, sign in -> POST the sample as CSV -> let the consumer do
every record -> query some lines back -> print what ended where, with the consumer's rule
throughput (one core, no I/O), its lines/s against the moto server, and the end-to-end time.

Settings come from the options, or the environment (STREAM_DEMO_*); the handlers read theirs
from the environment the resources define, as on AWS.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_pipeline import metrics
from retail_pipeline_dev.stream_local.moto import MotoServer
from retail_pipeline_dev.stream_local.resources import (
    LOCAL_CREDENTIALS,
    LocalResources,
    create_resources,
    sign_up_and_sign_in,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_CSV = REPO_ROOT / "data" / "raw" / "online_retail_first_9999.csv"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path(env("STREAM_DEMO_CSV", str(SAMPLE_CSV))))
    parser.add_argument("--region", default=env("AWS_REGION", "us-east-1"))
    parser.add_argument("--name", default=env("STREAM_DEMO_NAME", "retail-demo"), help="resource name prefix")
    parser.add_argument("--shards", type=int, default=int(env("STREAM_DEMO_SHARDS", "2")))
    parser.add_argument("--batch-size", type=int, default=int(env("STREAM_DEMO_BATCH_SIZE", "100")))
    parser.add_argument("--rows-per-post", type=int, default=int(env("STREAM_DEMO_ROWS_PER_POST", "2000")))
    parser.add_argument("--moto-port", type=int, default=int(env("STREAM_DEMO_MOTO_PORT", "0")))
    parser.add_argument("--api-port", type=int, default=int(env("STREAM_DEMO_API_PORT", "0")))
    parser.add_argument("--keep-running", action="store_true", help="serve the API until Ctrl-C")
    return parser.parse_args(argv)


def measure_rule_throughput(csv_path: Path, *, rounds: int = 3) -> tuple[int, float]:
    """The consumer's decode + rules + typing on every sample record, one core, no I/O:
    (records, best seconds of `rounds`)."""
    from retail_pipeline.stream.body import parse_csv
    from retail_pipeline.stream.process import read_record
    from retail_pipeline.stream.records import encode_payload

    rows = [row for row in parse_csv(csv_path.read_text(encoding="utf-8")) if row.record is not None]
    events = [
        {
            "eventID": f"shardId-000000000000:{index}",
            "kinesis": {
                "sequenceNumber": str(index),
                "approximateArrivalTimestamp": 0.0,
                "data": base64.b64encode(encode_payload(f"bench:{row.position}", row.record or {})).decode(),
            },
        }
        for index, row in enumerate(rows)
    ]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for event in events:
            read_record(event)
        best = min(best, time.perf_counter() - started)
    return len(events), best


def csv_chunks(csv_path: Path, rows_per_post: int) -> list[str]:
    """The CSV as bodies of at most `rows_per_post` rows, each with the header."""
    header, *rows = csv_path.read_text(encoding="utf-8").removeprefix("\ufeff").splitlines()
    return [
        "\r\n".join([header, *rows[i : i + rows_per_post]]) + "\r\n"
        for i in range(0, len(rows), rows_per_post)
    ]


def call(
    url: str, token: str, *, body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=body.encode("utf-8") if body is not None else None,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post_sample(api_url: str, token: str, csv_path: Path, rows_per_post: int) -> tuple[int, int]:
    """POST the CSV in chunks, each with its own Idempotency-Key; (accepted, rejected)."""
    accepted = rejected = 0
    for number, body in enumerate(csv_chunks(csv_path, rows_per_post)):
        status, answer = call(
            f"{api_url}/transactions",
            token,
            body=body,
            headers={"Content-Type": "text/csv", "Idempotency-Key": f"demo-{number}"},
        )
        if status != 202:
            raise RuntimeError(f"POST /transactions answered {status}: {answer}")
        accepted, rejected = accepted + answer["accepted"], rejected + answer["rejected"]
    return accepted, rejected


class TimedConsumer:
    """The consumer, timed: the records it was given and the seconds during which at least one
    invocation ran (it runs beside the posts, so its wall time would count its idle waits)."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.handler = handler
        self.records = 0
        self.busy_seconds = 0.0
        self._lock = threading.Lock()
        self._running = 0
        self._since = 0.0

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            if self._running == 0:
                self._since = time.perf_counter()
            self._running += 1
        try:
            return self.handler(event, context)
        finally:
            with self._lock:
                self._running -= 1
                self.records += len(event.get("Records", []))
                if self._running == 0:
                    self.busy_seconds += time.perf_counter() - self._since


def run_demo(args: argparse.Namespace, moto: MotoServer) -> dict[str, Any]:
    """The demo's steps: AWS stand-ins, the API and the consumer, the sample through them, the
    summary."""
    resources = prepare_resources(args, moto)
    # Imported after the environment is set, as Lambda imports a handler in a prepared one.
    from retail_pipeline.stream import ingest, process, query
    from retail_pipeline.stream.settings import AuthSettings
    from retail_pipeline_dev.stream_local.front import ApiFront

    token = sign_up_and_sign_in(resources, "demo-user", "Demo-Passw0rd!")
    routes = {("POST", "/transactions"): ingest.handler, ("GET", "/transactions"): query.handler}
    consumer = TimedConsumer(process.handler)
    with ApiFront(routes, AuthSettings.from_env(os.environ), port=args.api_port) as front:
        posted = stream_sample(args, resources, front.url, token, consumer)
        summary = summarize(resources, front.url, token, consumer, posted)
        if args.keep_running:
            serve_until_interrupted(front.url, token, summary)
    return summary


def prepare_resources(args: argparse.Namespace, moto: MotoServer) -> LocalResources:
    """The stream, table, bucket and user pool on moto, their names in the environment as the
    stack gives them to the handlers."""
    os.environ.update({"AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"]})
    os.environ.update({"AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"]})
    resources = create_resources(moto.url, region=args.region, name=args.name, shard_count=args.shards)
    os.environ.update(resources.environment())
    return resources


@dataclass(frozen=True)
class Posted:
    """What the API took of the sample, and when (perf_counter seconds)."""

    accepted: int
    rejected: int
    started: float
    posted: float
    consumed: float


def stream_sample(
    args: argparse.Namespace, resources: LocalResources, api_url: str, token: str, consumer: TimedConsumer
) -> Posted:
    """POST the sample while the poller feeds the consumer, then let it finish every record."""
    from retail_pipeline_dev.stream_local.poller import StreamPoller, s3_on_failure

    poller = StreamPoller(
        resources.client("kinesis"),
        stream_name=resources.stream_name,
        invoke=consumer,
        batch_size=args.batch_size,
        on_failure=s3_on_failure(resources.client("s3"), resources.bucket, "streamed/on_failure"),
    )
    started = time.perf_counter()
    stop = threading.Event()
    polling = threading.Thread(target=poller.run, args=(stop,), name="poller", daemon=True)
    polling.start()
    accepted, rejected = post_sample(api_url, token, args.csv, args.rows_per_post)
    posted = time.perf_counter()
    stop.set()
    polling.join()
    poller.drain()  # whatever the background poller had not reached yet
    return Posted(accepted, rejected, started, posted, consumed=time.perf_counter())


def summarize(
    resources: LocalResources, api_url: str, token: str, consumer: TimedConsumer, posted: Posted
) -> dict[str, Any]:
    """Where the records ended (lines stored, objects written), two queries back, the timings."""
    from retail_pipeline.stream.objects import list_objects
    from retail_pipeline.stream.settings import ProcessSettings

    settings = ProcessSettings.from_env(os.environ)
    s3 = resources.client("s3")
    pages = (
        resources.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=resources.table_name, Select="COUNT")
    )
    params = urllib.parse.urlencode({"InvoiceNo": "536365", "StockCode": "85123A"})
    _, one_item = call(f"{api_url}/transactions?{params}", token)
    _, one_invoice = call(f"{api_url}/transactions?InvoiceNo=536365", token)
    total = posted.accepted + posted.rejected
    return {
        "api": api_url,
        "posted": total,
        "accepted": posted.accepted,
        "rejected_at_ingest": posted.rejected,
        "stored_lines": sum(page["Count"] for page in pages),  # one item per line
        "curated_objects": len(list_objects(s3, resources.bucket, settings.curated_prefix)),
        "dead_letter_objects": len(list_objects(s3, resources.bucket, settings.dead_letter_prefix)),
        "ingest_seconds": round(posted.posted - posted.started, 2),
        "consumer_busy_seconds": round(consumer.busy_seconds, 2),
        "consumer_records_per_second": round(consumer.records / consumer.busy_seconds),
        "end_to_end_seconds": round(posted.consumed - posted.started, 2),
        "end_to_end_records_per_second": round(total / (posted.consumed - posted.started)),
        "query_536365_85123A": one_item,
        "query_536365_items": len(one_invoice["items"]) if isinstance(one_invoice, dict) else one_invoice,
    }


def serve_until_interrupted(api_url: str, token: str, summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2))
    print(f"\nServing {api_url}/transactions until Ctrl-C. Token:\n{token}\n", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # One summary at the end instead of a log line per batch (set it to INFO to see them).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # The handlers' EMF records, read back for the summary at the end.
    metrics_file = Path(tempfile.mkdtemp(prefix="stream-demo-")) / "metrics.jsonl"
    os.environ.setdefault(metrics.DESTINATION_VARIABLE, str(metrics_file))
    records, seconds = measure_rule_throughput(args.csv)
    with MotoServer(args.moto_port) as moto:
        summary = run_demo(args, moto)
    summary["rule_throughput_records_per_second_one_core"] = round(records / seconds)
    print(json.dumps(summary, indent=2))
    recorded = Path(os.environ[metrics.DESTINATION_VARIABLE])
    if recorded.exists():
        print(metrics.render_summary(metrics.totals(metrics.read_records(recorded)), title="Stream metrics"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
