"""The streaming path on one machine: moto in server mode stands in for AWS.

`moto` starts and stops a moto server process; `resources` creates the stream, table, bucket
and user pool; `front` is an HTTP server that routes to the handlers as API Gateway does (with
the Cognito check); `poller` feeds Kinesis batches to the consumer as Lambda's event source
mapping does; `demo` runs it all on the committed sample (`make stream-demo`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol


class LambdaHandler(Protocol):
    def __call__(self, event: dict[str, Any], context: Any, /) -> Any: ...


@dataclass
class LocalContext:
    """The parts of Lambda's context object that Powertools' Logger reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
