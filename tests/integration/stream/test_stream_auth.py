"""Access tokens over HTTP: each way a token can be wrong is a bare 401; a valid one is 200."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from retail_pipeline.stream import query
from retail_pipeline.stream.settings import AuthSettings
from retail_pipeline_dev.stream_local.front import ApiFront, proxy_event
from retail_pipeline_dev.stream_local.resources import sign_up_and_sign_in
from tests.integration.stream.conftest import TEST_CLIENT_ID, TEST_ISSUER

pytestmark = pytest.mark.integration

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
TARGET = "/transactions?InvoiceNo=536365&StockCode=85123A"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def alg_none(keys: Any) -> str:
    return unsigned({"alg": "none", "typ": "JWT", "kid": keys.kid}, claims_of(keys.token())) + "."


def hs256_with_the_public_key(keys: Any) -> str:
    public_pem = keys.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": keys.kid}, claims_of(keys.token()))
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered_signature(keys: Any) -> str:
    head, payload, signature = keys.token().split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def header_nested_too_deeply(keys: Any) -> str:
    head = b'{"alg": "RS256", "kid": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    _, payload, signature = keys.token().split(".")
    return f"{b64url(head)}.{payload}.{signature}"


def id_token(keys: Any) -> str:
    return keys.token(token_use="id", client_id=None, aud="test-app-client")


BAD_TOKENS: dict[str, Callable[[Any], str | None]] = {
    "no token": lambda keys: None,
    "not a JWT": lambda keys: "not-a-token",
    "alg none": alg_none,
    "HS256 signed with the public key": hs256_with_the_public_key,
    "unknown kid": lambda keys: keys.token(headers={"kid": "not-in-the-jwks"}),
    "signed by another key": lambda keys: keys.token(key=keys.stranger),
    "wrong iss": lambda keys: keys.token(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"),
    "wrong client_id": lambda keys: keys.token(client_id="someone-else"),
    "client_id a list holding the right one": lambda keys: keys.token(client_id=["test-app-client"]),
    "client_id an object": lambda keys: keys.token(client_id={"id": "test-app-client"}),
    "header nested too deeply": header_nested_too_deeply,
    "ID token": id_token,
    # Only token_use differs from a valid token: pins that check alone.
    "token_use id with a client_id": lambda keys: keys.token(token_use="id"),
    "expired": lambda keys: keys.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 60),
    "no exp": lambda keys: keys.token(exp=None),
    "tampered signature": tampered_signature,
}


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Any:
    stack = make_stack()
    assert stack.post(f"{HEADER}\r\n{GOOD}\r\n")[0] == 202
    stack.poller.drain()
    return stack


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_a_bad_token_is_refused_with_a_bare_401(stack: Any, signing_keys: Any, case: str) -> None:
    token = BAD_TOKENS[case](signing_keys)
    authorization = None if token is None else f"Bearer {token}"
    for method, body in (("GET", None), ("POST", f"{HEADER}\r\n{GOOD}\r\n".encode())):
        status, answer = stack.request(method, TARGET, body=body, headers={"Authorization": authorization})
        assert (status, answer) == (401, {"message": "Unauthorized"}), method


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_the_handler_checks_the_token_itself_too(stack: Any, signing_keys: Any, case: str) -> None:
    """Defence in depth: a request that reached the handler without the authorizer."""
    token = BAD_TOKENS[case](signing_keys)
    headers = {} if token is None else {"Authorization": token}
    event = proxy_event("GET", TARGET, headers, b"", {})
    settings = stack.resources.query_settings(stack.front.auth)
    response = query.handle(event, settings, dynamodb=stack.client("dynamodb"))
    assert (response["statusCode"], json.loads(response["body"])) == (401, {"message": "Unauthorized"})


def test_a_valid_access_token_is_let_through(stack: Any, signing_keys: Any) -> None:
    for authorization in (f"Bearer {signing_keys.token()}", signing_keys.token()):
        status, answer = stack.request("GET", TARGET, headers={"Authorization": authorization})
        assert status == 200
        assert answer["line_count"] == 1


def test_tokens_of_the_user_pool_on_moto_are_checked_with_its_jwks(stack: Any) -> None:
    """The same checks on tokens Cognito (here moto's) issues, with the settings the handlers
    read from the environment: the pool's issuer, its JWKS URL and its app client."""
    resources = stack.resources
    settings = resources.query_settings()  # from resources.environment(), as on AWS
    dynamodb = stack.client("dynamodb")
    routes = {("GET", "/transactions"): lambda event, _: query.handle(event, settings, dynamodb=dynamodb)}
    access_token = sign_up_and_sign_in(resources, "alice", "Alice-Passw0rd!")
    id_token_of_pool = resources.client("cognito-idp").initiate_auth(
        ClientId=resources.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Alice-Passw0rd!"},
    )["AuthenticationResult"]["IdToken"]
    with ApiFront(routes, settings.auth) as front:
        for token, status in ((access_token, 200), (id_token_of_pool, 401), (None, 401)):
            headers = {"Authorization": token} if token else {}
            request = urllib.request.Request(f"{front.url}{TARGET}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert (response.status, json.loads(response.read())["line_count"]) == (status, 1)
            except urllib.error.HTTPError as error:
                assert error.code == status


def query_front(stack: Any, auth: AuthSettings) -> tuple[ApiFront, Callable[[str], int]]:
    """A front whose token check uses `auth`, and a check of a token through the handler alone."""
    settings = dataclasses.replace(stack.resources.query_settings(), auth=auth)
    dynamodb = stack.client("dynamodb")

    def route(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return query.handle(event, settings, dynamodb=dynamodb)

    def through_the_handler(token: str) -> int:
        event = proxy_event("GET", TARGET, {"Authorization": f"Bearer {token}"}, b"", {})
        return int(route(event, None)["statusCode"])

    return ApiFront({("GET", "/transactions"): route}, auth), through_the_handler


def through_the_api(front: ApiFront, token: str) -> int:
    request = urllib.request.Request(f"{front.url}{TARGET}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    ("body", "status", "content_type"),
    [
        (b"<html>Service Unavailable</html>", 200, "text/html"),
        (b"[]", 200, "application/json"),
        (b'{"keys": "none"}', 200, "application/json"),
        (b"", 503, "text/plain"),
    ],
)
def test_a_jwks_that_answers_no_key_set_is_a_401_not_a_5xx(
    stack: Any, signing_keys: Any, body: bytes, status: int, content_type: str
) -> None:
    path = f"/broken-{uuid.uuid4().hex}.json"
    url = signing_keys.server.serve(path, body, status=status, content_type=content_type)
    front, through_the_handler = query_front(
        stack, AuthSettings(TEST_ISSUER, url, frozenset({TEST_CLIENT_ID}))
    )
    with front:
        assert through_the_api(front, signing_keys.token()) == 401
    assert through_the_handler(signing_keys.token()) == 401


def test_a_key_dropped_from_the_jwks_is_refused_once_the_cache_lifetime_is_over(
    stack: Any, signing_keys: Any
) -> None:
    path = f"/rotating-{uuid.uuid4().hex}.json"
    url = signing_keys.server.serve_keys(path, {signing_keys.kid: signing_keys.private_key})
    auth = AuthSettings(TEST_ISSUER, url, frozenset({TEST_CLIENT_ID}), jwks_cache_seconds=1)
    front, through_the_handler = query_front(stack, auth)
    token = signing_keys.token()
    with front:
        assert (through_the_api(front, token), through_the_handler(token)) == (200, 200)
        signing_keys.server.serve_keys(path, {"test-key-2": signing_keys.stranger})  # the pool rotated
        assert (through_the_api(front, token), through_the_handler(token)) == (200, 200)  # still cached
        time.sleep(1.2)
        assert (through_the_api(front, token), through_the_handler(token)) == (401, 401)
    assert signing_keys.server.fetches[path] == 2  # once per lifetime, not per request
