"""infra/template.yaml: cfn-lint clean, and wired to the code it deploys (handlers, settings,
the packaged zip, the curated schema) with the streaming and security settings the design asks."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from cfnlint import api as cfn_lint
from cfnlint.decode import decode

from retail_pipeline import catalog, orchestration
from retail_pipeline.packaging import LAMBDA_ZIP
from retail_pipeline.stream.objects import CURATED_SCHEMA
from retail_pipeline.stream.settings import IngestSettings, ProcessSettings, QuerySettings
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
PARAMETER_FILES = sorted((REPO_ROOT / "infra" / "parameters").glob("*.json"))
HANDLER_SETTINGS = {
    "retail_pipeline.stream.ingest.handler": IngestSettings,
    "retail_pipeline.stream.process.handler": ProcessSettings,
    "retail_pipeline.stream.query.handler": QuerySettings,
    "retail_pipeline.orchestration.handler": orchestration.LoadSettings,
}
# Actions AWS gives no resource-level permission: granted on "*", each under a condition.
UNSCOPED_ACTIONS = {
    ("cloudwatch:PutMetricData",),
    ("redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return dict(decoded)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """A role's statements; one under a condition (Fn::If) counts as granted."""
    found = [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in found]


def placeholder(value: Any) -> str:
    """A stand-in for a value CloudFormation resolves at deploy time: `<Ref:X>`, `<Sub:...>`."""
    if isinstance(value, str):
        return value
    ((function, argument),) = value.items()
    return f"<{function.removeprefix('Fn::')}:{argument if isinstance(argument, str) else argument[0]}>"


@pytest.mark.parametrize("parameters", [None, *PARAMETER_FILES], ids=lambda p: p.name if p else "defaults")
def test_cfn_lint_finds_nothing_even_informational(parameters: Path | None) -> None:
    files = [str(parameters)] if parameters else []
    config = cfn_lint.ManualArgs(include_checks=["I"], parameter_files=files)
    assert [str(match) for match in cfn_lint.lint_file(TEMPLATE, config=config)] == []


def test_the_event_source_mapping_checkpoints_bisects_and_gives_up_to_a_destination(template: dict) -> None:
    (mapping,) = of_type(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["FunctionName"] == {"Ref": "ProcessFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["TransactionsStream", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600  # within the stream's retention
    assert mapping["ParallelizationFactor"] == 1  # the handler relies on shard order
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["ProcessFailures", "Arn"]}
    role = of_type(template, "AWS::IAM::Role")["ProcessRole"]
    assert any(s["Action"] == "sqs:SendMessage" and s["Resource"] == destination for s in statements(role))


def test_each_function_runs_an_existing_handler_from_the_packaged_zip(template: dict) -> None:
    functions = of_type(template, "AWS::Lambda::Function")
    assert sorted(f["Handler"] for f in functions.values()) == sorted(HANDLER_SETTINGS)
    for function in functions.values():
        module, _, name = function["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))
        assert function["Runtime"] == "python3.11" and function["Architectures"] == ["x86_64"]
        assert function["Code"]["S3Key"] == {"Fn::Sub": f"${{ArtifactsPrefix}}/{LAMBDA_ZIP}"}


def test_each_function_environment_satisfies_its_handler_settings(template: dict) -> None:
    for function in of_type(template, "AWS::Lambda::Function").values():
        variables = {name: placeholder(v) for name, v in function["Environment"]["Variables"].items()}
        # Lambda sets AWS_REGION itself; AWS_ENDPOINT_URL is for local runs only.
        assert "AWS_ENDPOINT_URL" not in variables
        settings = HANDLER_SETTINGS[function["Handler"]].from_env({**variables, "AWS_REGION": "eu-west-1"})
        if isinstance(settings, ProcessSettings):
            assert settings.bucket == "<Ref:CuratedBucket>"
            assert settings.rejects_bucket == "<Ref:QuarantineBucket>"
        elif isinstance(settings, orchestration.LoadSettings):
            assert settings.output == "<Sub:s3://${CuratedBucket}/batch>"
            assert settings.warehouse_url == "redshift-data://<Ref:RedshiftWorkgroup>/retail"
        else:
            assert settings.auth.client_ids == {"<Ref:UserPoolClient>"}
            issuer = "<Sub:https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}>"
            assert settings.auth.issuer == issuer


def test_both_api_methods_take_only_cognito_access_tokens(template: dict) -> None:
    (authorizer,) = of_type(template, "AWS::ApiGateway::Authorizer").values()
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["ProviderARNs"] == [{"Fn::GetAtt": ["UserPool", "Arn"]}]
    methods = of_type(template, "AWS::ApiGateway::Method")
    assert sorted(m["HttpMethod"] for m in methods.values()) == ["GET", "POST"]
    for method in methods.values():
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert method["AuthorizerId"] == {"Ref": "ApiAuthorizer"}
        # Without scopes API Gateway expects ID tokens; the handlers accept access tokens only.
        assert method["AuthorizationScopes"]
        assert method["Integration"]["Type"] == "AWS_PROXY"
    client = of_type(template, "AWS::Cognito::UserPoolClient")["UserPoolClient"]
    assert client["GenerateSecret"] is False and "ALLOW_USER_PASSWORD_AUTH" not in client["ExplicitAuthFlows"]
    for permission in of_type(template, "AWS::Lambda::Permission").values():
        assert re.search(r"\$\{Api\}/\*/(GET|POST)/transactions$", permission["SourceArn"]["Fn::Sub"])


def test_iam_policies_grant_named_actions_on_named_resources(template: dict) -> None:
    for name, role in of_type(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role, name
        for statement in statements(role):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert statement["Effect"] == "Allow"
            assert not [a for a in actions if "*" in a], (name, actions)
            if statement["Resource"] == "*":  # only where AWS has no resource-level permission
                assert tuple(actions) in UNSCOPED_ACTIONS and statement["Condition"], name
            else:  # at most the objects under a named key prefix: ".../incoming*", ".../batch/*"
                for resource in re.findall(r'"([^"]*\*[^"]*)"', json.dumps(statement["Resource"])):
                    assert re.fullmatch(r"[^*]+/[^*/]+/?\*", resource), (name, resource)


def test_the_four_buckets_are_private_encrypted_and_tls_only(template: dict) -> None:
    buckets = of_type(template, "AWS::S3::Bucket")
    assert sorted(buckets) == ["CuratedBucket", "QuarantineBucket", "RawBucket", "ReportsBucket"]
    policies = {p["Bucket"]["Ref"]: p for p in of_type(template, "AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}, name
        assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        (statement,) = policies[name]["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": False}}
        assert template["Resources"][name]["DeletionPolicy"] == "Retain"


def glue_type(field: pa.Field) -> str:
    kind = field.type
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    return {pa.string(): "string", pa.int32(): "int", pa.timestamp("us"): "timestamp"}[kind]


def test_the_catalog_table_is_the_curated_schema_with_registered_partitions(template: dict) -> None:
    tables = of_type(template, "AWS::Glue::Table")
    for other in tables.values():  # the streamed table too: the loader takes both alike
        columns = [(c["Name"], c["Type"]) for c in other["TableInput"]["StorageDescriptor"]["Columns"]]
        assert columns == [(field.name, glue_type(field)) for field in CURATED_SCHEMA]
    table = tables["CuratedTable"]["TableInput"]
    keys = [key["Name"] for key in table["PartitionKeys"]]
    assert tuple(keys) == catalog.PARTITION_KEYS
    # With projection on, Athena would ignore the partitions the job points at its versions.
    assert not [name for name in table["Parameters"] if name.startswith(("projection.", "storage.location"))]
    location = table["StorageDescriptor"]["Location"]["Fn::Sub"]
    job = of_type(template, "AWS::Glue::Job")["BatchJob"]
    assert location == job["DefaultArguments"]["--output"]["Fn::Sub"] + "/curated/"


def test_the_glue_job_is_told_the_catalog_table_whose_partitions_it_switches(template: dict) -> None:
    arguments = of_type(template, "AWS::Glue::Job")["BatchJob"]["DefaultArguments"]
    table = of_type(template, "AWS::Glue::Table")["CuratedTable"]
    assert arguments["--incremental"] == "true"
    assert arguments["--catalog-database"] == {"Ref": "CatalogDatabase"} == table["DatabaseName"]
    assert arguments["--catalog-table"] == table["TableInput"]["Name"]


def client_operations(module: Any, client: str, service: str) -> set[str]:
    """The API operations a module calls on a client it names `client` (methods and paginators)."""
    source = Path(module.__file__).read_text()
    methods = re.findall(rf'\b{client}\.(?:get_paginator\("(\w+)"\)|(?!get_paginator\b)(\w+))', source)
    mapping = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
    return {mapping[paginated or called] for paginated, called in methods}


def test_the_glue_job_role_may_make_every_catalog_call_on_that_table_only(template: dict) -> None:
    role = of_type(template, "AWS::IAM::Role")["GlueJobRole"]
    (switch,) = [s for s in statements(role) if any(a.startswith("glue:") for a in s["Action"])]
    granted = {action.removeprefix("glue:") for action in switch["Action"]}
    called = client_operations(catalog, "glue", "glue")
    assert called == {
        "GetTable",
        "GetPartitions",
        "BatchCreatePartition",
        "BatchUpdatePartition",
        "BatchDeletePartition",
    }
    assert called <= granted
    table = of_type(template, "AWS::Glue::Table")["CuratedTable"]["TableInput"]["Name"]
    arns = [resource["Fn::Sub"].rpartition(":")[2] for resource in switch["Resource"]]
    assert arns == ["catalog", "database/${CatalogDatabase}", f"table/${{CatalogDatabase}}/{table}"]


def test_the_glue_job_role_may_list_write_and_delete_the_curated_versions(template: dict) -> None:
    role = of_type(template, "AWS::IAM::Role")["GlueJobRole"]
    granted = statements(role)
    versions = f"batch/{catalog.VERSIONS_DIR}"
    (listing,) = [s for s in granted if s.get("Sid") == "ListCuratedVersions"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"]["StringLike"]["s3:prefix"] == [f"{versions}/*", versions]
    (objects,) = [s for s in granted if s.get("Sid") == "WriteCuratedVersions"]
    assert set(objects["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert objects["Resource"] == {"Fn::Sub": f"${{CuratedBucket.Arn}}/{versions}/*"}
    assert client_operations(catalog, "s3", "s3") == {
        "ListObjectsV2",
        "DeleteObjects",
    }  # ListBucket, DeleteObject


def test_the_glue_job_is_glue_5_scheduled_by_the_daily_flow_and_runs_one_at_a_time(template: dict) -> None:
    job = of_type(template, "AWS::Glue::Job")["BatchJob"]
    assert job["GlueVersion"] == "5.0" and job["Command"]["Name"] == "glueetl"
    assert job["Command"]["ScriptLocation"]["Fn::Sub"].endswith("/jobs/batch_etl.py")
    assert job["ExecutionProperty"]["MaxConcurrentRuns"] == 1
    # No Glue trigger of its own: the schedule starts the state machine, which runs the job.
    assert not of_type(template, "AWS::Glue::Trigger")
    (schedule,) = of_type(template, "AWS::Events::Rule")["DailySchedule"]["Targets"]
    assert schedule["Arn"] == {"Ref": "DailyFlow"}
    flow = of_type(template, "AWS::StepFunctions::StateMachine")["DailyFlow"]
    assert flow["DefinitionSubstitutions"]["BatchJob"] == {"Ref": "BatchJob"}


def test_redshift_serverless_keeps_its_password_out_of_the_template(template: dict) -> None:
    (namespace,) = of_type(template, "AWS::RedshiftServerless::Namespace").values()
    assert namespace["ManageAdminPassword"] is True and "AdminUserPassword" not in namespace
    (workgroup,) = of_type(template, "AWS::RedshiftServerless::Workgroup").values()
    assert workgroup["NamespaceName"] == {"Ref": "RedshiftNamespace"}
    assert workgroup["PubliclyAccessible"] is False


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda p: p.name)
def test_a_parameter_file_sets_the_required_parameters_and_no_unknown_one(template: dict, path: Path) -> None:
    given = {entry["ParameterKey"] for entry in json.loads(path.read_text())}
    declared = template["Parameters"]
    assert given <= set(declared)
    assert {name for name, p in declared.items() if "Default" not in p} <= given
