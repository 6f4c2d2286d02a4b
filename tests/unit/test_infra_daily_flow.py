"""The daily flow's state machine (infra/template.yaml, DailyFlow) run without AWS: moto's ASL
interpreter executes the template's own definition; the Glue job, the report read and the
load function answer as each case scripts them (Step Functions' "mocked service integrations"),
and SNS is moto's, read back through an SQS subscription.

moto's mock-configuration loader is a stub, so each case hands its scripted answers to the
execution worker directly. Retry intervals are cut to 1 s (counts and error names kept)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from moto.stepfunctions.parser.asl.eval.evaluation_details import EvaluationDetails
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.mocking.mock_config import (
    MockedResponse,
    MockedResponseReturn,
    MockedResponseThrow,
    MockTestCase,
    StateMockedResponses,
)

from tests.conftest import REPO_ROOT

REGION = "us-east-1"
JOB = "retail-pipeline-batch-dev"
LOAD = "arn:aws:lambda:us-east-1:123456789012:function:retail-dev-load"
RUN_ID = "jr_0123456789abcdef"
LOADS = ("LoadBatchRun", "LoadStreamed")


def flow_definition() -> dict[str, Any]:
    template, _ = decode(str(REPO_ROOT / "infra" / "template.yaml"))
    definition: dict[str, Any] = json.loads(
        json.dumps(template["Resources"]["DailyFlow"]["Properties"]["Definition"])
    )
    return definition


def returns(payload: Any) -> dict[str, Any]:
    return {"Return": payload}


def throws(error: str, cause: str = "") -> dict[str, Any]:
    return {"Throw": {"Error": error, "Cause": cause}}


GLUE_SUCCEEDED = returns({"Id": RUN_ID, "JobRunState": "SUCCEEDED"})
# On AWS a failed .sync run is States.TaskFailed with the run as the cause; moto's scripted
# errors cannot carry a States.* name, so it is scripted under a name of its own (the Catch,
# States.ALL, takes both alike).
GLUE_RUN_FAILED = throws(
    "JobRunFailed",
    json.dumps({"Id": RUN_ID, "JobRunState": "FAILED", "ErrorMessage": "SystemExit: 1 (quality gate)"}),
)


def report(status: str) -> dict[str, Any]:
    return returns({"Body": json.dumps({"run_id": RUN_ID, "status": status, "published": 9853})})


def loaded(**result: Any) -> dict[str, Any]:
    return returns({"StatusCode": 200, "Payload": result})


@dataclass
class Execution_:
    status: str
    states: list[str]  # entered, in order
    tasks: list[tuple[str, Any]]  # (resource, parameters) of each task attempt
    notifications: list[str]  # the SNS subjects published
    messages: list[Any]


class Flow:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.case: MockTestCase | None = None
        flow = self

        def worker(execution: Any) -> ExecutionWorker:
            return ExecutionWorker(
                evaluation_details=EvaluationDetails(
                    aws_execution_details=execution._get_start_aws_execution_details(),
                    execution_details=execution.get_start_execution_details(),
                    state_machine_details=execution.get_start_state_machine_details(),
                ),
                exec_comm=execution._get_start_execution_worker_comm(),
                cloud_watch_logging_session=execution._cloud_watch_logging_session,
                activity_store=execution._activity_store,
                mock_test_case=flow.case,
            )

        monkeypatch.setattr(Execution, "_get_start_execution_worker", worker)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.topic = self.sns.create_topic(Name="retail-dev-notifications")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
        definition = flow_definition()
        for state in definition["States"].values():
            for retry in state.get("Retry", []):
                retry.update(IntervalSeconds=1, BackoffRate=1.0)
        text = json.dumps(definition)
        substitutions = {
            "BatchJob": JOB,
            "CuratedBucket": "retail-curated",
            "LoadFunction": LOAD,
            "Topic": self.topic,
        }
        for name, value in substitutions.items():
            text = text.replace(f"${{{name}}}", value)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        role = "arn:aws:iam::123456789012:role/daily-flow"
        self.arn = self.sfn.create_state_machine(name="daily", definition=text, roleArn=role)[
            "stateMachineArn"
        ]

    def run(self, **scripted: list[dict[str, Any]]) -> Execution_:
        states = []
        for state, answers in scripted.items():
            mocked: list[MockedResponse] = [
                MockedResponseThrow(i, i, a["Throw"]["Error"], a["Throw"]["Cause"])
                if "Throw" in a
                else MockedResponseReturn(i, i, a["Return"])
                for i, a in enumerate(answers)
            ]
            states.append(StateMockedResponses(state, f"{state}-answers", mocked))
        self.case = MockTestCase("daily", "case", states)
        execution = self.sfn.start_execution(stateMachineArn=self.arn, input="{}")["executionArn"]
        deadline = time.monotonic() + 60
        while (described := self.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=execution)["events"]
        entered = [
            e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
        ]
        tasks = [
            (
                e["taskScheduledEventDetails"]["resource"],
                json.loads(e["taskScheduledEventDetails"]["parameters"]),
            )
            for e in events
            if e["type"] == "TaskScheduled"
        ]
        received = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        bodies = [json.loads(m["Body"]) for m in received]
        return Execution_(
            described["status"],
            entered,
            tasks,
            [b["Subject"] for b in bodies],
            [json.loads(b["Message"]) for b in bodies],
        )


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield Flow(monkeypatch)


def test_a_good_day_runs_the_batch_then_loads_its_run_and_the_stream_then_notifies(flow: Flow) -> None:
    run = flow.run(
        RunBatch=[GLUE_SUCCEEDED],
        ReadRunReport=[report("succeeded")],
        LoadBatchRun=[loaded(status="loaded", rows=9853)],
        LoadStreamed=[loaded(status="nothing_new")],
    )
    assert run.status == "SUCCEEDED"
    assert run.states == ["RunBatch", "ReadRunReport", "GateOutcome", *LOADS, "NotifySuccess"]
    resources = [resource for resource, _ in run.tasks]
    assert resources == ["startJobRun.sync", "getObject", "invoke", "invoke", "publish"]
    assert run.tasks[0][1] == {"JobName": JOB, "Arguments": {"--incremental": "true"}}
    # The run's own report, named by the Glue run id (the batch run id), and that run loaded.
    assert run.tasks[1][1] == {"Bucket": "retail-curated", "Key": f"batch/reports/runs/{RUN_ID}.json"}
    assert run.tasks[2][1] == {"FunctionName": LOAD, "Payload": {"action": "batch", "run_id": RUN_ID}}
    assert run.tasks[3][1] == {"FunctionName": LOAD, "Payload": {"action": "streamed"}}
    assert run.notifications == ["retail-pipeline daily run succeeded"]
    assert run.messages[0]["load"]["result"]["rows"] == 9853


def test_a_failed_batch_run_is_notified_and_nothing_is_loaded(flow: Flow) -> None:
    run = flow.run(RunBatch=[GLUE_RUN_FAILED])
    assert run.status == "FAILED"
    assert run.states == ["RunBatch", "NotifyFailure", "Failed"]
    assert not set(LOADS) & set(run.states)
    assert run.notifications == ["retail-pipeline daily run FAILED"]
    assert run.messages[0]["error"]["Error"] == "JobRunFailed"
    assert "quality gate" in run.messages[0]["error"]["Cause"]


def test_a_report_that_is_not_a_success_is_never_loaded(flow: Flow) -> None:
    run = flow.run(RunBatch=[GLUE_SUCCEEDED], ReadRunReport=[report("failed_quality_gate")])
    assert run.status == "FAILED"
    assert run.states == ["RunBatch", "ReadRunReport", "GateOutcome", "GateFailed", "NotifyFailure", "Failed"]
    assert run.messages[0]["error"]["Error"] == "GateFailed"
    assert "failed_quality_gate" in run.messages[0]["error"]["Cause"]


def test_nothing_new_loads_no_batch_run_but_still_the_stream(flow: Flow) -> None:
    run = flow.run(
        RunBatch=[GLUE_SUCCEEDED],
        ReadRunReport=[throws("S3.NoSuchKeyException", "The specified key does not exist.")],
        LoadStreamed=[loaded(status="loaded", rows=12)],
    )
    assert run.status == "SUCCEEDED"
    assert run.states == ["RunBatch", "ReadRunReport", "NothingNew", "LoadStreamed", "NotifySuccess"]
    assert run.messages[0]["outcome"]["report"] == {"status": "nothing_new"}


def test_transient_errors_are_retried_and_the_day_goes_on(flow: Flow) -> None:
    busy = throws("Glue.ConcurrentRunsExceededException", "another run of the job")
    run = flow.run(
        RunBatch=[busy, busy, GLUE_SUCCEEDED],
        ReadRunReport=[throws("S3.SdkClientException", "connection reset"), report("succeeded")],
        LoadBatchRun=[throws("Lambda.TooManyRequestsException", "rate"), loaded(status="loaded", rows=1)],
        LoadStreamed=[throws("Lambda.ServiceException", "oops"), loaded(status="nothing_new")],
    )
    assert run.status == "SUCCEEDED"
    attempts = [resource for resource, _ in run.tasks]
    assert attempts.count("startJobRun.sync") == 3 and attempts.count("getObject") == 2
    assert attempts.count("invoke") == 4
    assert run.notifications == ["retail-pipeline daily run succeeded"]


def test_retries_end_after_their_attempts_and_the_failure_is_notified(flow: Flow) -> None:
    busy = throws("Glue.ConcurrentRunsExceededException", "another run of the job")
    run = flow.run(RunBatch=[busy, busy, busy, busy])
    assert run.status == "FAILED"
    assert [resource for resource, _ in run.tasks].count("startJobRun.sync") == 4  # 1 + MaxAttempts 3
    assert not set(LOADS) & set(run.states)
    assert run.messages[0]["error"]["Error"] == "Glue.ConcurrentRunsExceededException"


def test_a_load_that_fails_is_not_retried_as_if_transient_and_is_notified(flow: Flow) -> None:
    failed = throws("WarehouseError", "load of batch jr_0123 failed and was rolled back: disk full")
    run = flow.run(RunBatch=[GLUE_SUCCEEDED], ReadRunReport=[report("succeeded")], LoadBatchRun=[failed])
    assert run.status == "FAILED"
    assert run.states[-3:] == ["LoadBatchRun", "NotifyFailure", "Failed"]
    assert "LoadStreamed" not in run.states
    assert [resource for resource, _ in run.tasks].count("invoke") == 1
    assert "rolled back" in run.messages[0]["error"]["Cause"]


def next_states(state: dict[str, Any]) -> set[str]:
    found = {state["Next"]} if "Next" in state else set()
    found |= {catch["Next"] for catch in state.get("Catch", [])}
    found |= {choice["Next"] for choice in state.get("Choices", [])}
    return found | ({state["Default"]} if "Default" in state else set())


def test_only_a_succeeded_report_leads_to_the_batch_load_and_every_task_is_caught() -> None:
    states = flow_definition()["States"]
    into_load = [name for name, state in states.items() if "LoadBatchRun" in next_states(state)]
    assert into_load == ["GateOutcome"]
    (choice,) = [c for c in states["GateOutcome"]["Choices"] if c["Next"] == "LoadBatchRun"]
    assert choice == {
        "Variable": "$.outcome.report.status",
        "StringEquals": "succeeded",
        "Next": "LoadBatchRun",
    }
    for name, state in states.items():
        if state["Type"] == "Task" and not name.startswith("Notify"):
            assert state["Catch"][-1] == {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.error",
                "Next": "NotifyFailure",
            }
        for retry in state.get("Retry", []):  # transient errors only: a failed run is not re-run
            assert (
                "States.ALL" not in retry["ErrorEquals"] and "States.TaskFailed" not in retry["ErrorEquals"]
            )
