"""The AWS gateway: the one door to AWS (token buckets, in-flight bound, retries, coalescing, metrics).

Start an `AwsGatewayActor` with an adapter (`adapters.aws.Boto3Adapter` in production, a fake in tests) and
talk to it through `AwsGateway`.
"""

from __future__ import annotations

from actors.aws_gateway.actor import AwsGatewayActor
from actors.aws_gateway.facade import AwsGateway, start_gateway
from actors.aws_gateway.messages import AwsCall, GetDebugState, SubmitAwsCall
from actors.aws_gateway.work import AwsCaller
from model.throttle import AwsApiError, ErrorClass

__all__ = [
    "AwsApiError",
    "AwsCall",
    "AwsCaller",
    "AwsGateway",
    "AwsGatewayActor",
    "ErrorClass",
    "GetDebugState",
    "SubmitAwsCall",
    "start_gateway",
]
