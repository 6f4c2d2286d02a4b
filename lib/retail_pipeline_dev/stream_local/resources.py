"""The AWS resources of the streaming path, created on a moto server (on AWS: infrastructure code).

Also a user's sign-up and sign-in against the user pool, for the access token the API wants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import boto3

from retail_pipeline.stream import store
from retail_pipeline.stream.settings import (
    AuthSettings,
    AwsSettings,
    IngestSettings,
    ProcessSettings,
    QuerySettings,
)

# moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class LocalResources:
    region: str
    endpoint_url: str
    stream_name: str
    table_name: str
    bucket: str
    user_pool_id: str
    client_id: str
    max_body_bytes: int = 6_000_000

    @property
    def issuer(self) -> str:
        # The issuer moto writes into its tokens is the real Cognito URL of the pool.
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint_url}/{self.user_pool_id}/.well-known/jwks.json"

    def environment(self) -> dict[str, str]:
        """The handlers' environment variables (what the Lambda functions get on AWS)."""
        return {
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "TRANSACTIONS_STREAM": self.stream_name,
            "TRANSACTIONS_TABLE": self.table_name,
            "CURATED_BUCKET": self.bucket,
            "INGEST_MAX_BODY_BYTES": str(self.max_body_bytes),
            "COGNITO_ISSUER": self.issuer,
            "COGNITO_JWKS_URL": self.jwks_url,
            "COGNITO_CLIENT_IDS": self.client_id,
        }

    def ingest_settings(self, auth: AuthSettings | None = None) -> IngestSettings:
        settings = IngestSettings.from_env(self.environment())
        return settings if auth is None else replace(settings, auth=auth)

    def process_settings(self) -> ProcessSettings:
        return ProcessSettings.from_env(self.environment())

    def query_settings(self, auth: AuthSettings | None = None) -> QuerySettings:
        settings = QuerySettings.from_env(self.environment())
        return settings if auth is None else replace(settings, auth=auth)

    def client(self, service: str) -> Any:
        return local_client(service, AwsSettings(self.region, self.endpoint_url))


def local_client(service: str, aws: AwsSettings) -> Any:
    return boto3.client(service, region_name=aws.region, endpoint_url=aws.endpoint_url, **LOCAL_CREDENTIALS)


def create_resources(
    endpoint_url: str, *, region: str, name: str, shard_count: int, max_body_bytes: int = 6_000_000
) -> LocalResources:
    """A Kinesis stream, a DynamoDB table (as infra/template.yaml's), an S3 bucket and a Cognito
    user pool with an app client."""
    aws = AwsSettings(region, endpoint_url)
    kinesis = local_client("kinesis", aws)
    kinesis.create_stream(StreamName=f"{name}-transactions", ShardCount=shard_count)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=f"{name}-transactions", WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    local_client("dynamodb", aws).create_table(
        TableName=f"{name}-transactions",
        KeySchema=[
            {"AttributeName": store.INVOICE_NO, "KeyType": "HASH"},
            {"AttributeName": store.LINE_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": store.INVOICE_NO, "AttributeType": "S"},
            {"AttributeName": store.LINE_KEY, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    local_client("s3", aws).create_bucket(Bucket=f"{name}-lake")
    cognito = local_client("cognito-idp", aws)
    pool_id = cognito.create_user_pool(PoolName=f"{name}-users")["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=f"{name}-api",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return LocalResources(
        region=region,
        endpoint_url=endpoint_url,
        stream_name=f"{name}-transactions",
        table_name=f"{name}-transactions",
        bucket=f"{name}-lake",
        user_pool_id=pool_id,
        client_id=client_id,
        max_body_bytes=max_body_bytes,
    )


def sign_up_and_sign_in(resources: LocalResources, username: str, password: str) -> str:
    """Sign a user up (confirmed by an admin) and sign in: the user's access token."""
    cognito = resources.client("cognito-idp")
    cognito.sign_up(ClientId=resources.client_id, Username=username, Password=password)
    cognito.admin_confirm_sign_up(UserPoolId=resources.user_pool_id, Username=username)
    result = cognito.initiate_auth(
        ClientId=resources.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return str(result["AuthenticationResult"]["AccessToken"])
