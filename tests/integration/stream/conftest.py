"""The streaming path against a moto server process over HTTP (never in-process patching).

Session-scoped: one moto server, one RSA key pair with a JWKS served on loopback (whose
documents a test can change). Per use: a `Stack` of fresh resources (stream, table, bucket, user
pool) with the handlers behind the local HTTP front and a poller standing in for the event
source mapping; with `faults=True` the handlers' AWS clients go through a `FaultProxy`, which
throttles or fails the calls a test arms it to.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import jwt
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives.asymmetric import rsa

from retail_pipeline.stream import ingest, process, query, store
from retail_pipeline.stream.settings import AuthSettings
from retail_pipeline_dev.stream_local.front import ApiFront
from retail_pipeline_dev.stream_local.moto import LOOPBACK, MotoServer
from retail_pipeline_dev.stream_local.poller import StreamPoller
from retail_pipeline_dev.stream_local.resources import LOCAL_CREDENTIALS, LocalResources, create_resources
from tests.integration.stream.faults import FaultProxy

TEST_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
TEST_CLIENT_ID = "test-app-client"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


class JwksServer:
    """Serves documents on loopback as Cognito serves its JWKS; a test may change them."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, str, bytes]] = {}
        self.fetches: dict[str, int] = {}
        documents, fetches = self.documents, self.fetches

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fetches[self.path] = fetches.get(self.path, 0) + 1
                status, content_type, body = documents.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = HTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{path}"

    def serve(
        self, path: str, body: bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> str:
        self.documents[path] = (status, content_type, body)
        return self.url(path)

    def serve_keys(self, path: str, keys: dict[str, rsa.RSAPrivateKey]) -> str:
        """A JWKS holding the public half of each key, by kid."""
        jwks = [
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
                "kid": kid,
                "alg": "RS256",
                "use": "sig",
            }
            for kid, key in keys.items()
        ]
        return self.serve(path, json.dumps({"keys": jwks}).encode())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class SigningKeys:
    private_key: rsa.RSAPrivateKey
    kid: str
    stranger: rsa.RSAPrivateKey  # a key the JWKS does not hold
    jwks_url: str
    server: JwksServer

    def token(self, *, headers: dict[str, Any] | None = None, key: Any = None, **claims: Any) -> str:
        """An access token of the test pool; keyword arguments replace claims (None drops one)."""
        now = int(time.time())
        payload = {
            "sub": "user-1",
            "iss": TEST_ISSUER,
            "client_id": TEST_CLIENT_ID,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "iat": now,
            "auth_time": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "username": "user-1",
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(
            payload, key or self.private_key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )


@pytest.fixture(scope="session")
def signing_keys() -> Iterator[SigningKeys]:
    """An RSA key pair, its public half served as a JWKS on loopback as Cognito serves it."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = JwksServer()
    kid = "test-key-1"
    yield SigningKeys(private_key, kid, stranger, server.serve_keys("/jwks.json", {kid: private_key}), server)
    server.stop()


@pytest.fixture(scope="session")
def test_auth(signing_keys: SigningKeys) -> AuthSettings:
    return AuthSettings(TEST_ISSUER, signing_keys.jwks_url, frozenset({TEST_CLIENT_ID}))


# Clients behind the fault proxy give up quickly: the handler sees the fault it was armed with.
FAST_FAILING = Config(retries={"mode": "standard", "total_max_attempts": 2}, read_timeout=60)


@dataclass
class Stack:
    resources: LocalResources
    front: ApiFront
    poller: StreamPoller
    token: str
    process: Callable[[dict[str, Any], Any], Any]
    clients: dict[str, Any] = field(default_factory=dict)
    # The proxy the handlers' Kinesis and DynamoDB clients go through (make_stack(faults=True)).
    faults: FaultProxy | None = None

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.resources.client(service)
        return self.clients[service]

    def request(
        self, method: str, target: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, raw = self.request_raw(method, target, body=body, headers=headers)
        return status, json.loads(raw or b"null")

    def request_raw(
        self, method: str, target: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        sent = {name: value for name, value in sent.items() if value is not None}
        request = urllib.request.Request(f"{self.front.url}{target}", data=body, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, text: str | bytes, content_type: str = "text/csv", **headers: str) -> tuple[int, Any]:
        headers = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        body = text if isinstance(text, bytes) else text.encode("utf-8")
        return self.request("POST", "/transactions", body=body, headers=headers)

    def get(self, **params: str) -> tuple[int, Any]:
        return self.request("GET", f"/transactions?{urllib.parse.urlencode(params)}")

    def items(self) -> list[dict[str, Any]]:
        return store.scan_items(self.client("dynamodb"), self.resources.table_name)


@pytest.fixture(scope="session")
def make_stack(
    moto_server: MotoServer, test_auth: AuthSettings, signing_keys: SigningKeys
) -> Iterator[Callable[..., Stack]]:
    """Fresh resources behind a front and a poller; all fronts stop at the session's end."""
    servers: list[ApiFront | FaultProxy] = []

    def make(
        *, shards: int = 1, batch_size: int = 100, max_body_bytes: int = 6_000_000, faults: bool = False
    ) -> Stack:
        name = f"t{uuid.uuid4().hex[:10]}"
        resources = create_resources(
            moto_server.url, region=REGION, name=name, shard_count=shards, max_body_bytes=max_body_bytes
        )
        kinesis, dynamodb, s3 = (resources.client(s) for s in ("kinesis", "dynamodb", "s3"))
        proxy = None
        if faults:
            proxy = FaultProxy(moto_server.url).start()
            servers.append(proxy)
            kinesis, dynamodb = (
                boto3.client(
                    s, region_name=REGION, endpoint_url=proxy.url, config=FAST_FAILING, **LOCAL_CREDENTIALS
                )
                for s in ("kinesis", "dynamodb")
            )
        ingest_settings = resources.ingest_settings(test_auth)
        query_settings = resources.query_settings(test_auth)
        process_settings = resources.process_settings()

        def invoke_process(event: dict[str, Any], context: Any) -> Any:
            return process.process_batch(event, process_settings, dynamodb=dynamodb, s3=s3)

        routes = {
            ("POST", "/transactions"): lambda event, _: ingest.handle(
                event, ingest_settings, kinesis=kinesis
            ),
            ("GET", "/transactions"): lambda event, _: query.handle(event, query_settings, dynamodb=dynamodb),
        }
        front = ApiFront(routes, test_auth).start()
        servers.append(front)
        poller = StreamPoller(
            resources.client("kinesis"),
            stream_name=resources.stream_name,
            invoke=invoke_process,
            batch_size=batch_size,
        )
        return Stack(resources, front, poller, signing_keys.token(), invoke_process, {"s3": s3}, proxy)

    yield make
    for server in servers:
        server.stop()
