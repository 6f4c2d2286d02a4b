"""Cognito access tokens, checked in code (locally, and behind API Gateway as defence in depth).

The same checks as API Gateway's Cognito authorizer, with PyJWT and the user pool's JWKS:
RS256 only, a `kid` the JWKS holds, `iss` = the user pool, `token_use` = access, `client_id`
among the allowed app clients, `exp` and `iat` present and valid. Any failure is the same
Unauthorized: the caller learns nothing of why; the log says which check failed. That includes
what no check foresaw (a JWKS that answers HTML, a header nested too deeply): the check fails
closed, with a 401, never a 5xx.

The pool's keys are cached for `AuthSettings.jwks_cache_seconds` and fetched again after it,
so a key Cognito drops stops being trusted then; an unknown `kid` fetches them again at most
once per PyJWKClient's cool-down (30 s), so random kids cannot hammer the JWKS endpoint.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import jwt

from retail_pipeline.stream.settings import AuthSettings

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "token_use", "client_id"]


class UnauthorizedError(Exception):
    """The request carries no acceptable access token."""


@lru_cache(maxsize=8)
def jwks_client(jwks_url: str, lifespan: float) -> jwt.PyJWKClient:
    """One JWKS client per URL and container. Only the key set is cached, for `lifespan`:
    PyJWKClient's per-kid cache (cache_keys) never expires, so it would trust a dropped key
    for the container's life."""
    return jwt.PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=True, lifespan=lifespan, timeout=5)


def bearer_token(authorization: str | None) -> str:
    """The token of an Authorization header: `Bearer <token>`, or the bare token as API
    Gateway's Cognito authorizer takes it."""
    value = (authorization or "").strip()
    scheme, _, rest = value.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value
    if not token:
        raise UnauthorizedError("no token")
    return token


def verify_access_token(authorization: str | None, settings: AuthSettings) -> dict[str, Any]:
    """The token's claims if it is a valid access token of the pool; UnauthorizedError if not."""
    try:
        token = bearer_token(authorization)
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise UnauthorizedError("not an RS256 token with a kid")
        signing_key = jwks_client(settings.jwks_url, settings.jwks_cache_seconds).get_signing_key(kid)
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key.key,
            algorithms=[ALGORITHM],
            issuer=settings.issuer,
            # Cognito access tokens carry client_id, not aud (ID tokens carry aud).
            options={"require": REQUIRED_CLAIMS, "verify_aud": False},
        )
        if claims.get("token_use") != "access":
            raise UnauthorizedError("not an access token")
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or client_id not in settings.client_ids:
            raise UnauthorizedError("client_id not allowed")
    except UnauthorizedError as error:
        logger.info("Token refused: %s", error)
        raise
    except jwt.PyJWTError as error:
        logger.info("Token refused: %s", type(error).__name__)
        raise UnauthorizedError(type(error).__name__) from error
    except Exception as error:
        logger.warning("Token refused: %s: %s", type(error).__name__, error)
        raise UnauthorizedError(type(error).__name__) from error
    return claims


def is_authorized(authorization: str | None, settings: AuthSettings) -> bool:
    try:
        verify_access_token(authorization, settings)
    except UnauthorizedError:
        return False
    return True
