"""AwsFacts with a fake gateway: what it remembers, and that a remembered fact costs no AWS call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.facts import AwsFacts

TG = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/tg/1"


class FakeGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    def call(self, service: str, operation: str, params: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
        self.calls.append((operation, params))
        if params.get("TargetGroupArns") == [TG]:
            return {"TargetGroups": [{"TargetGroupArn": TG, "HealthCheckIntervalSeconds": 5,
                                      "HealthyThresholdCount": 3}]}  # fmt: skip
        return {"TargetGroups": []}


def test_a_health_check_timing_noted_from_an_answer_costs_no_call() -> None:
    gateway, clock = FakeGateway(), [0.0]
    facts = AwsFacts(gateway, cluster_name="c", clock=lambda: clock[0])  # type: ignore[arg-type]
    facts.note_health_check("arn:tg/2", 10, 4)  # e.g. from a CreateTargetGroup answer
    assert facts.health_check_timing("arn:tg/2") == (10.0, 4)
    assert gateway.calls == []
    assert facts.health_check_timing(TG) == (5.0, 3)  # not noted: read once, then remembered
    assert facts.health_check_timing(TG) == (5.0, 3)
    assert len(gateway.calls) == 1
    assert facts.health_check_timing("arn:tg/gone") == (15.0, 2)  # upstream's defaults; not remembered
    facts.health_check_timing("arn:tg/gone")
    assert len(gateway.calls) == 3
    clock[0] = 4000.0  # past the time to live: read again
    facts.health_check_timing("arn:tg/2")
    assert gateway.calls[-1] == ("DescribeTargetGroups", {"TargetGroupArns": ["arn:tg/2"]})
