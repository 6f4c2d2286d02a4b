"""A small stand-in for API Gateway: HTTP on loopback -> Lambda proxy events -> the handlers.

As a REST API with a Cognito user pool authorizer and Lambda proxy integration: the token is
checked before any handler runs (401 `{"message": "Unauthorized"}`), its claims go into
`requestContext.authorizer.claims`, and the handler's proxy response becomes the HTTP answer
(502 if the handler raises). Bodies over API Gateway's 10 MB are refused with 413 unread.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from retail_pipeline.stream.auth import UnauthorizedError, verify_access_token
from retail_pipeline.stream.settings import AuthSettings
from retail_pipeline_dev.stream_local import LambdaHandler, LocalContext
from retail_pipeline_dev.stream_local.moto import LOOPBACK

logger = logging.getLogger(__name__)

API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
STAGE = "local"


def proxy_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, claims: dict[str, Any]
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for one request."""
    url = urlsplit(target)
    query = parse_qs(url.query, keep_blank_values=True)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": STAGE,
            "resourcePath": url.path,
            "httpMethod": method,
            "path": f"/{STAGE}{url.path}",
            "authorizer": {"claims": claims},
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


class ApiFront:
    """`routes` maps (method, path) to a Lambda handler `(event, context) -> proxy response`."""

    def __init__(
        self, routes: Mapping[tuple[str, str], LambdaHandler], auth: AuthSettings, *, port: int = 0
    ) -> None:
        self.routes = dict(routes)
        self.auth = auth
        self._server = ThreadingHTTPServer((LOOPBACK, port), _request_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> ApiFront:
        # A short poll: stop() waits for it, and tests stop many fronts.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="api-front", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ApiFront:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """What API Gateway answers: the proxy response of the route's handler, or its own."""
        path = urlsplit(target).path.rstrip("/") or "/"
        route = self.routes.get((method, path))
        if route is None:
            known = any(route_path == path for _, route_path in self.routes)
            return _plain(405 if known else 404, "Method Not Allowed" if known else "Not Found")
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            claims = verify_access_token(lowered.get("authorization"), self.auth)
        except UnauthorizedError:
            return _plain(401, "Unauthorized")
        event = proxy_event(method, target, headers, body, claims)
        try:
            return dict(route(event, LocalContext(function_name=f"{method} {path}")))
        except Exception:
            logger.exception("The handler of %s %s raised", method, path)
            return _plain(502, "Internal server error")


def _plain(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }


def _request_handler(front: ApiFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > API_GATEWAY_MAX_BODY_BYTES:
                self.close_connection = True
                self._send(_plain(413, "Request Entity Too Large"))
                return
            body = self.rfile.read(length) if length else b""
            headers = {name: value for name, value in self.headers.items()}
            self._send(front.respond(method, self.path, headers, body))

        def _send(self, response: dict[str, Any]) -> None:
            raw = response.get("body") or ""
            payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode("utf-8")
            self.send_response(int(response["statusCode"]))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler
