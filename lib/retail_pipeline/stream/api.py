"""API Gateway (REST, Lambda proxy integration) requests and responses, and cached AWS clients."""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.config import Config

from retail_pipeline.stream.auth import UnauthorizedError, verify_access_token
from retail_pipeline.stream.body import BodyError
from retail_pipeline.stream.settings import AuthSettings, AwsSettings

# The body API Gateway's Cognito authorizer answers with: nothing about why.
UNAUTHORIZED_BODY = {"message": "Unauthorized"}


@lru_cache(maxsize=16)
def aws_client(service: str, aws: AwsSettings) -> Any:
    """One boto3 client per service and endpoint per container: clients are cached, data is
    not (botocore clients are thread-safe)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16)
    return boto3.client(service, region_name=aws.region, endpoint_url=aws.endpoint_url, config=config)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


def error_response(status: int, message: str) -> dict[str, Any]:
    return json_response(status, {"message": message})


def unauthorized_response() -> dict[str, Any]:
    return json_response(401, UNAUTHORIZED_BODY, {"WWW-Authenticate": "Bearer"})


def authorize(request: APIGatewayProxyEvent, settings: AuthSettings) -> dict[str, Any] | None:
    """The access token's claims, or None: the handlers answer 401 themselves."""
    try:
        return verify_access_token(request.headers.get("authorization"), settings)
    except UnauthorizedError:
        return None


def body_bytes(request: APIGatewayProxyEvent) -> bytes:
    """The request body as bytes (API Gateway base64-encodes binary media types)."""
    body = request.body or ""
    if request.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BodyError("the body is not valid base64") from error
    # surrogatepass: a lone surrogate in the event fails its own record later, not the request.
    return body.encode("utf-8", "surrogatepass")
