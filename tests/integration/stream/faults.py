"""A proxy between boto3 and the moto server that fails chosen AWS calls the way AWS fails them.

moto never throttles, never answers 5xx and never leaves items unprocessed; this proxy does, on
the real HTTP path (no patching): each request is forwarded to moto unless a fault is armed for
its operation (the JSON protocol's X-Amz-Target, e.g. `DynamoDB_20120810.BatchWriteItem`).

- `fail(operation, status, code)`: answer with that AWS error instead of forwarding;
- `take_half(operation)`: forward only the first half of a PutRecords' records or a
  BatchWriteItem's items, and answer the rest as refused (ErrorCode) or UnprocessedItems.
Faults stay armed until `clear()`, or for `times` requests (after letting `after` through).
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from retail_pipeline_dev.stream_local.moto import LOOPBACK

PUT_RECORDS = "Kinesis_20131202.PutRecords"
BATCH_WRITE_ITEM = "DynamoDB_20120810.BatchWriteItem"
BATCH_GET_ITEM = "DynamoDB_20120810.BatchGetItem"


@dataclass
class Fault:
    kind: str  # "fail" or "take_half"
    status: int = 500
    code: str = "InternalServerError"
    times: int | None = None
    after: int = 0  # requests let through before the fault starts


class FaultProxy:
    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname or LOOPBACK, target.port or 80)
        self.faults: dict[str, Fault] = {}
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(
        self,
        operation: str,
        *,
        status: int = 500,
        code: str = "InternalServerError",
        times: int | None = None,
        after: int = 0,
    ) -> None:
        with self._lock:
            self.faults[operation] = Fault("fail", status, code, times, after)

    def take_half(self, operation: str, *, times: int | None = None) -> None:
        with self._lock:
            self.faults[operation] = Fault("take_half", times=times)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def fault_for(self, operation: str) -> Fault | None:
        with self._lock:
            self.seen[operation] = self.seen.get(operation, 0) + 1
            fault = self.faults.get(operation)
            if fault is not None and fault.after > 0:
                fault.after -= 1
                return None
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[operation]
            return fault

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            sent = {name: value for name, value in headers.items() if name.lower() != "content-length"}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _take_half(proxy: FaultProxy, operation: str, request: dict[str, Any], send: Any) -> tuple[int, bytes]:
    if operation == PUT_RECORDS:
        records = request["Records"]
        kept = len(records) // 2
        status, body = send({**request, "Records": records[:kept]})
        answer = json.loads(body)
        refused = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
        answer["Records"] = answer.get("Records", []) + [refused] * (len(records) - kept)
        answer["FailedRecordCount"] = answer.get("FailedRecordCount", 0) + len(records) - kept
        return status, json.dumps(answer).encode()
    if operation == BATCH_WRITE_ITEM:
        ((table, items),) = request["RequestItems"].items()
        kept = len(items) // 2
        status, body = send({**request, "RequestItems": {table: items[:kept]}} if kept else None)
        answer = json.loads(body) if kept else {}
        answer["UnprocessedItems"] = {table: items[kept:]}
        return status, json.dumps(answer).encode()
    raise ValueError(f"take_half does not know {operation}")


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            operation = self.headers.get("X-Amz-Target", "")
            fault = proxy.fault_for(operation) if operation else None
            if fault is None:
                self._reply(*proxy.forward(self.command, self.path, headers, body))
                return
            if fault.kind == "fail":
                error = json.dumps({"__type": fault.code, "message": "injected by the test's fault proxy"})
                self._reply(fault.status, [("Content-Type", "application/x-amz-json-1.0")], error.encode())
                return

            def send(request: dict[str, Any] | None) -> tuple[int, bytes]:
                if request is None:
                    return 200, b"{}"
                status, _, answer = proxy.forward(
                    self.command, self.path, headers, json.dumps(request).encode()
                )
                return status, answer

            status, answer = _take_half(proxy, operation, json.loads(body), send)
            self._reply(status, [("Content-Type", "application/x-amz-json-1.0")], answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "server",
                    "date",
                ):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
