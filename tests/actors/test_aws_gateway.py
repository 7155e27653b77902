"""AwsGatewayActor with a fake adapter and fake time: admission, coalescing, retries, bounds, survival, metrics.

Time is `FakeTimers`: buckets refill and timers fire only when a test calls `advance()`. Adapter calls run on
the gateway's real worker threads, so tests wait for end states with `eventually`, never with sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from prometheus_client import CollectorRegistry
from pyrsistent import PMap

from actors.aws_gateway import AwsApiError, AwsGateway, ErrorClass, start_gateway
from actors.aws_gateway.facade import READINESS_POLL, URGENT, work_began_at
from actors.timers import FakeTimers
from model.throttle import parse_throttle_overrides
from tests.support.wait import eventually

ELB = "Elastic Load Balancing v2"

Handler = Callable[[str, str, dict[str, Any]], dict[str, Any]]


class FakeAdapter:
    """Records calls; answers with `handler` (default: echo the params). Calls can be held at a gate."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler or (lambda service, operation, params: {"Echo": params})
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append((service, operation, params))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            assert self.gate.wait(10), "test never opened the gate"
            return self.handler(service, operation, params)
        finally:
            with self._lock:
                self.running -= 1

    def count(self, operation: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, op, _ in self.calls if operation is None or op == operation)


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_gateway(timers: FakeTimers, registry: CollectorRegistry) -> Iterator[Callable[..., AwsGateway]]:
    started: list[AwsGateway] = []

    def make(adapter: FakeAdapter, **kwargs: Any) -> AwsGateway:
        kwargs.setdefault("timers", timers)
        kwargs.setdefault("registry", registry)
        kwargs.setdefault("rules", ())
        kwargs.setdefault("default_timeout", 10)
        gateway = start_gateway(adapter=adapter, **kwargs)
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


def done(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except AwsApiError:
        return True
    return True


def settled(gateway: AwsGateway, *, queued: int, in_flight: int = 0) -> dict[str, Any]:
    """Wait until the gateway has processed its mailbox into this state; return its debug state."""

    def check() -> dict[str, Any]:
        state = gateway.debug_state()
        assert (state["queued"], state["in_flight"]) == (queued, in_flight), state
        return state

    return eventually(check, timeout=5)


def finished(gateway: AwsGateway, calls: int) -> dict[str, Any]:
    """Wait until the gateway has accounted for `calls` finished calls (callers hear of a success first)."""

    def check() -> dict[str, Any]:
        state = gateway.debug_state()
        totals = state["totals"]
        assert (totals["succeeded"] + totals["failed"], state["in_flight"]) == (calls, 0), state
        return state

    return eventually(check, timeout=5)


def error_of(future: pykka.Future[Any]) -> AwsApiError:
    with pytest.raises(AwsApiError) as info:
        future.get(timeout=5)
    return info.value


def drive(timers: FakeTimers, *futures: pykka.Future[Any], step: float = 1.0) -> None:
    """Advance fake time until every future is answered (backoff and bucket timers fire as time passes)."""

    def check() -> bool:
        timers.advance(step)
        return all(done(f) for f in futures)

    eventually(check, timeout=10, interval=0.005)


# --------------------------------------------------------------------------------------------------------
# Admission


def test_calls_are_admitted_in_order_as_tokens_arrive(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=1:2"))
    futures = [gateway.submit("elbv2", "DescribeTargetGroups", {"Names": [f"tg-{i}"]}) for i in range(5)]

    state = settled(gateway, queued=3)
    assert adapter.count() == 2
    assert state["queues"] == [{"rules": [f"{ELB}:^Describe=1:2"], "depth": 3}]
    assert timers.pending(), "a timer must wake the gateway when the next token is due"

    timers.advance(1.0)
    settled(gateway, queued=2)
    assert adapter.count() == 3
    drive(timers, *futures)

    assert [params["Names"][0] for _, _, params in adapter.calls] == [f"tg-{i}" for i in range(5)]
    assert [f.get(timeout=1)["Echo"]["Names"][0] for f in futures] == [f"tg-{i}" for i in range(5)]


def test_a_class_waiting_for_tokens_does_not_block_another(
    make_gateway: Callable[..., AwsGateway],
) -> None:
    adapter = FakeAdapter()
    rules = parse_throttle_overrides(f"{ELB}:^Describe=1:1,{ELB}:^RegisterTargets=1:1")
    gateway = make_gateway(adapter, rules=rules)
    describes = [gateway.submit("elbv2", "DescribeListeners", {"n": i}) for i in range(3)]

    registered = gateway.call("elbv2", "RegisterTargets", {"TargetGroupArn": "arn"})
    unthrottled = gateway.call("ec2", "DescribeSubnets", {})

    assert registered["Echo"] == {"TargetGroupArn": "arn"}
    assert unthrottled["Echo"] == {}
    describes[0].get(timeout=5)
    assert [done(f) for f in describes[1:]] == [False, False]


def test_in_flight_bound_is_respected_and_a_slow_call_holds_one_slot(
    make_gateway: Callable[..., AwsGateway],
) -> None:
    slow_gate = threading.Event()

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "ModifyListener":
            assert slow_gate.wait(10)
        return {}

    adapter = FakeAdapter(handler)
    gateway = make_gateway(adapter, max_in_flight=3)
    slow = gateway.submit("elbv2", "ModifyListener", {"ListenerArn": "l"})
    eventually(lambda: adapter.count("ModifyListener") == 1)

    fast = [gateway.submit("ec2", "DescribeInstances", {"n": i}) for i in range(20)]
    for future in fast:
        future.get(timeout=5)

    assert not done(slow)
    slow_gate.set()
    slow.get(timeout=5)
    assert adapter.max_running <= 3


def test_in_flight_never_exceeds_the_bound_under_load(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter()
    adapter.gate.clear()
    gateway = make_gateway(adapter, max_in_flight=4)
    futures = [gateway.submit("ec2", "CreateTags", {"n": i}) for i in range(12)]

    state = settled(gateway, queued=8, in_flight=4)
    assert state["queues"] == [{"rules": [], "depth": 8}]
    adapter.gate.set()
    for future in futures:
        future.get(timeout=5)
    assert (adapter.max_running, adapter.count()) == (4, 12)


# --------------------------------------------------------------------------------------------------------
# Coalescing


def test_identical_queued_reads_become_one_aws_call(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter()
    adapter.gate.clear()
    gateway = make_gateway(adapter, max_in_flight=1)
    blocker = gateway.submit("elbv2", "DescribeLoadBalancers", {"Names": ["other"]})
    readers = [gateway.submit("elbv2", "DescribeLoadBalancers", {"Names": ["lb"]}) for _ in range(10)]
    writers = [gateway.submit("elbv2", "ModifyLoadBalancerAttributes", {"Arn": "a"}) for _ in range(2)]

    state = settled(gateway, queued=3, in_flight=1)
    assert state["totals"]["coalesced"] == 9
    adapter.gate.set()

    answers = [f.get(timeout=5) for f in readers]
    for future in [blocker, *writers]:
        future.get(timeout=5)
    assert adapter.count("DescribeLoadBalancers") == 2
    assert adapter.count("ModifyLoadBalancerAttributes") == 2  # writes are never coalesced
    assert all(answer is answers[0] for answer in answers)  # one frozen answer shared, not copied
    assert isinstance(answers[0], PMap)


def test_many_concurrent_callers_share_one_call(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter()
    adapter.gate.clear()
    gateway = make_gateway(adapter, max_in_flight=1)
    blocker = gateway.submit("sts", "GetCallerIdentity", {"x": 1})
    results: list[Any] = []

    def caller() -> None:
        results.append(gateway.call("elbv2", "DescribeTargetHealth", {"TargetGroupArn": "tg"}))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    eventually(lambda: gateway.debug_state()["totals"]["submitted"] == 21)
    adapter.gate.set()
    for thread in threads:
        thread.join(5)
    blocker.get(timeout=5)
    assert (len(results), adapter.count("DescribeTargetHealth")) == (20, 1)


# --------------------------------------------------------------------------------------------------------
# Errors and retries


def scripted(*outcomes: AwsApiError | None) -> Handler:
    """Fail with each given error in turn (None = succeed), then succeed."""
    remaining = list(outcomes)
    lock = threading.Lock()

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with lock:
            outcome = remaining.pop(0) if remaining else None
        if outcome is not None:
            raise outcome
        return {"ok": True}

    return handler


def aws_error(code: str, status: int, error_class: ErrorClass) -> AwsApiError:
    return AwsApiError(code, "scripted", status, error_class, service="elbv2", operation="DescribeRules")


def test_throttling_is_retried_until_success(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers, registry: CollectorRegistry
) -> None:
    throttled = aws_error("Throttling", 400, ErrorClass.THROTTLED)
    adapter = FakeAdapter(scripted(throttled, throttled))
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=10:10"))
    future = gateway.submit("elbv2", "DescribeRules", {})
    drive(timers, future, step=0.5)

    assert future.get(timeout=1) == {"ok": True}
    assert adapter.count() == 3
    finished(gateway, 1)
    labels = {"service": ELB, "operation": "DescribeRules"}
    assert (
        registry.get_sample_value("aws_api_calls_total", {**labels, "status_code": "200", "error_code": ""})
        == 1
    )
    assert (
        registry.get_sample_value(
            "aws_api_call_throttled_errors_total",
            {**labels, "status_code": "400", "error_code": "Throttling"},
        )
        == 2
    )
    assert registry.get_sample_value("aws_api_call_retries_sum", labels) == 2
    assert (
        registry.get_sample_value(
            "aws_api_requests_total", {**labels, "status_code": "400", "error_code": "Throttling"}
        )
        == 2
    )


def test_throttling_slows_the_bucket_down(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    throttled = aws_error("Throttling", 400, ErrorClass.THROTTLED)
    adapter = FakeAdapter(scripted(throttled))
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=10:10"))
    future = gateway.submit("elbv2", "DescribeRules", {})
    eventually(lambda: gateway.debug_state()["totals"]["throttled"] == 1)

    bucket = gateway.debug_state()["buckets"][0]
    assert (bucket["factor"], bucket["tokens"], bucket["throttled"]) == (0.5, 0.0, 1)
    drive(timers, future, step=0.5)
    assert future.get(timeout=1) == {"ok": True}


def test_a_not_found_answer_speeds_a_slowed_bucket_up_again_as_a_success_does(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """Lookups by name that find nothing are answers at the rate AWS accepts: the bucket recovers on them too."""
    throttled = aws_error("Throttling", 400, ErrorClass.THROTTLED)
    not_found = aws_error("TargetGroupNotFound", 400, ErrorClass.PERMANENT)
    adapter = FakeAdapter(scripted(throttled, not_found))
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=10:10"))
    future = gateway.submit("elbv2", "DescribeTargetGroups", {})
    eventually(lambda: gateway.debug_state()["totals"]["throttled"] == 1)
    timers.advance(4.0)  # the retry is answered "not found" 4 s after the slow-down
    eventually(lambda: done(future))
    assert error_of(future).code == "TargetGroupNotFound"
    assert gateway.debug_state()["buckets"][0]["factor"] > 0.5


def test_server_errors_are_retried_up_to_max_retries(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    failures = [aws_error("InternalFailure", 500, ErrorClass.RETRYABLE)] * 10
    adapter = FakeAdapter(scripted(*failures))
    gateway = make_gateway(adapter, max_retries=3)
    future = gateway.submit("elbv2", "DescribeRules", {})
    drive(timers, future)

    error = error_of(future)
    assert (error.code, error.error_class, adapter.count()) == ("InternalFailure", ErrorClass.RETRYABLE, 4)


@pytest.mark.parametrize(
    ("code", "error_class"),
    [("ValidationError", ErrorClass.PERMANENT), ("SomethingOdd", ErrorClass.TEMPORARY)],
)
def test_non_retryable_errors_reach_the_caller_at_once(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers, code: str, error_class: ErrorClass
) -> None:
    adapter = FakeAdapter(scripted(aws_error(code, 400, error_class)))
    gateway = make_gateway(adapter)
    future = gateway.submit("elbv2", "CreateRule", {})

    error = error_of(future)  # no time advanced: no backoff happened
    assert (error.code, error.error_class, adapter.count()) == (code, error_class, 1)
    assert timers.pending() == []


def test_coalesced_callers_all_get_the_error(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter(scripted(aws_error("LoadBalancerNotFound", 400, ErrorClass.PERMANENT)))
    adapter.gate.clear()
    gateway = make_gateway(adapter, max_in_flight=1)
    blocker = gateway.submit("sts", "GetCallerIdentity", {})
    futures = [gateway.submit("elbv2", "DescribeLoadBalancers", {"Names": ["gone"]}) for _ in range(3)]
    settled(gateway, queued=1, in_flight=1)
    adapter.gate.set()

    with pytest.raises(AwsApiError):
        blocker.get(timeout=5)
    for future in futures:
        future.get(timeout=5)  # the first call consumed the scripted error; the coalesced one succeeds
    assert adapter.count("DescribeLoadBalancers") == 1


# --------------------------------------------------------------------------------------------------------
# Survival, shutdown, pagination


def test_the_gateway_survives_a_crashing_adapter(make_gateway: Callable[..., AwsGateway]) -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "DeleteRule":
            raise RuntimeError("adapter bug")
        return {"fine": True}

    gateway = make_gateway(FakeAdapter(handler))
    with pytest.raises(AwsApiError) as info:
        gateway.call("elbv2", "DeleteRule", {"RuleArn": "r"})
    gateway.ref.tell(object())  # a message it does not know is logged, not fatal

    assert (info.value.code, info.value.error_class) == ("AdapterError", ErrorClass.TEMPORARY)
    assert gateway.call("elbv2", "DescribeRules", {}) == {"fine": True}
    assert gateway.ref.is_alive()


def test_stopping_answers_every_waiting_caller(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter()
    adapter.gate.clear()
    gateway = make_gateway(adapter, max_in_flight=1)
    futures = [gateway.submit("ec2", "CreateTags", {"n": i}) for i in range(3)]
    settled(gateway, queued=2, in_flight=1)

    gateway.stop()
    adapter.gate.set()
    assert {error_of(f).code for f in futures} == {"GatewayStopped"}
    with pytest.raises(AwsApiError, match="not running"):
        gateway.call("ec2", "CreateTags", {})


def test_a_caller_that_times_out_gets_an_aws_error(make_gateway: Callable[..., AwsGateway]) -> None:
    adapter = FakeAdapter()
    adapter.gate.clear()
    gateway = make_gateway(adapter)
    gateway.max_wait = 0.0  # a call still in flight past max_wait: the caller stops waiting
    with pytest.raises(AwsApiError) as info:
        gateway.call("ec2", "CreateTags", {}, timeout=0.05)
    adapter.gate.set()
    assert (info.value.code, info.value.error_class) == ("GatewayUnavailable", ErrorClass.TEMPORARY)


def test_paginate_follows_the_services_token(make_gateway: Callable[..., AwsGateway]) -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        page = int(params.get("Marker", "0"))
        response: dict[str, Any] = {"TargetGroups": [f"tg-{page}"]}
        if page < 2:
            response["NextMarker"] = str(page + 1)
        return response

    gateway = make_gateway(FakeAdapter(handler))
    pages = list(gateway.paginate("elbv2", "DescribeTargetGroups", {"PageSize": 1}))
    assert [tg for page in pages for tg in page["TargetGroups"]] == ["tg-0", "tg-1", "tg-2"]


def test_metrics_count_calls_and_in_flight(
    make_gateway: Callable[..., AwsGateway], registry: CollectorRegistry
) -> None:
    adapter = FakeAdapter(scripted(aws_error("AccessDenied", 403, ErrorClass.PERMANENT)))
    gateway = make_gateway(adapter)
    with pytest.raises(AwsApiError):
        gateway.call("ec2", "DescribeVpcs", {})
    gateway.call("ec2", "DescribeVpcs", {})
    finished(gateway, 2)

    labels = {"service": "EC2", "operation": "DescribeVpcs"}
    assert (
        registry.get_sample_value(
            "aws_api_calls_total", {**labels, "status_code": "403", "error_code": "AccessDenied"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "aws_api_call_permission_errors_total",
            {**labels, "status_code": "403", "error_code": "AccessDenied"},
        )
        == 1
    )
    assert (
        registry.get_sample_value("aws_api_calls_total", {**labels, "status_code": "200", "error_code": ""})
        == 1
    )
    assert registry.get_sample_value("aws_api_call_duration_seconds_count", labels) == 2
    assert registry.get_sample_value("lbc_aws_gateway_throttle_wait_seconds_count", labels) == 2
    assert registry.get_sample_value("lbc_aws_gateway_in_flight") == 0


def test_debug_state_is_json(make_gateway: Callable[..., AwsGateway]) -> None:
    import json

    gateway = make_gateway(
        FakeAdapter(), rules=parse_throttle_overrides(f"{ELB}:^Describe=5:5"), region="eu-west-1"
    )
    gateway.call("elbv2", "DescribeRules", {})
    state = json.loads(json.dumps(finished(gateway, 1)))
    assert state["region"] == "eu-west-1"
    assert state["totals"]["succeeded"] == 1
    assert state["buckets"][0]["granted"] == 1


def test_throttling_of_an_unruled_operation_teaches_the_gateway_a_bucket(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """Upstream has no client bucket for ELB Create* calls: once AWS throttles one, the gateway paces them."""
    throttled = aws_error("Throttling", 400, ErrorClass.THROTTLED)
    adapter = FakeAdapter(scripted(throttled))
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=10:10"))
    first = gateway.submit("elbv2", "CreateLoadBalancer", {})
    eventually(lambda: gateway.debug_state()["totals"]["throttled"] == 1)
    learned = [b for b in gateway.debug_state()["buckets"] if "(?!" in b["rule"]]  # ELB's writes
    assert len(learned) == 1
    assert (learned[0]["factor"], learned[0]["throttled"]) == (0.5, 1)
    drive(timers, first, step=0.5)
    assert first.get(timeout=1) == {"ok": True}
    # Another write of that service now passes the learned bucket; reads keep their own rule only.
    second = gateway.submit("elbv2", "CreateRule", {})
    drive(timers, second, step=0.5)
    assert second.get(timeout=1) == {"ok": True}
    buckets = {b["rule"]: b for b in gateway.debug_state()["buckets"]}
    assert buckets[learned[0]["rule"]]["granted"] >= 2


def test_a_burst_throttled_while_in_flight_teaches_one_bucket_only(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """Every call of a burst was sent before the first throttle came back: all of them learn the same bucket."""
    throttled = aws_error("Throttling", 400, ErrorClass.THROTTLED)
    adapter = FakeAdapter(scripted(*[throttled] * 4))
    adapter.gate.clear()  # hold all four in flight, unclassified, then let their throttles arrive together
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=10:10"), max_in_flight=4)
    futures = [
        gateway.submit("elbv2", op, {}) for op in ("CreateRule", "CreateRule", "CreateListener", "DeleteRule")
    ]
    eventually(lambda: adapter.running == 4)
    adapter.gate.set()
    eventually(lambda: gateway.debug_state()["totals"]["throttled"] == 4)
    learned = [b for b in gateway.debug_state()["buckets"] if "(?!" in b["rule"]]
    assert len(learned) == 1
    drive(timers, *futures, step=0.5)
    assert [f.get(timeout=1) for f in futures] == [{"ok": True}] * 4


def test_urgent_work_such_as_readiness_polls_jumps_the_queue_of_its_class(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=1:1"), max_in_flight=1)
    reads = [gateway.submit("elbv2", "DescribeRules", {"ListenerArn": str(i)}) for i in range(5)]
    with work_began_at(URGENT):  # as a TargetGroupActor reconciles
        registrations = [
            gateway.submit("elbv2", "DescribeTargetHealth", {"TargetGroupArn": f"tg-{i}"}) for i in range(3)
        ]
    with work_began_at(READINESS_POLL):  # as the ReadinessActor polls
        poll = gateway.submit("elbv2", "DescribeTargetHealth", {"TargetGroupArn": "tg", "Targets": []})
    drive(timers, poll, step=1.0)
    assert poll.get(timeout=1)["Echo"]["TargetGroupArn"] == "tg"
    assert sum(done(f) for f in reads + registrations) <= 2  # the poll went ahead of the calls queued before
    drive(timers, *registrations, step=1.0)
    assert sum(done(f) for f in reads) <= 2  # the urgent reads went ahead of the others
    drive(timers, *reads, step=1.0)


def test_work_begun_earlier_is_served_first_in_its_class(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """A reconcile under way finishes its chain of calls before reconciles begun later take the tokens."""
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=1:1"), max_in_flight=1)
    with work_began_at(200.0):
        late = [gateway.submit("elbv2", "DescribeRules", {"ListenerArn": f"late-{i}"}) for i in range(3)]
    with work_began_at(100.0):  # submitted after, but its work began before
        early = gateway.submit("elbv2", "DescribeRules", {"ListenerArn": "early"})
    drive(timers, early, *late, step=1.0)
    order = [params["ListenerArn"] for _, _, params in adapter.calls]
    assert order.index("early") <= 1  # only a call already sent when it came can go before it
    assert order[-1].startswith("late-")


def test_an_urgent_caller_joining_a_queued_read_moves_it_up(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """Coalescing must not make older work wait for a younger caller's turn."""
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Describe=1:1"), max_in_flight=1)
    with work_began_at(200.0):
        late = [gateway.submit("elbv2", "DescribeRules", {"ListenerArn": f"late-{i}"}) for i in range(4)]
    with work_began_at(100.0):  # the same read as the last one queued: joins it, and takes it forward
        joined = gateway.submit("elbv2", "DescribeRules", {"ListenerArn": "late-3"})
    drive(timers, joined, *late, step=1.0)
    order = [params["ListenerArn"] for _, _, params in adapter.calls]
    assert order.index("late-3") <= 1
    assert len(order) == 4 and gateway.debug_state()["totals"]["coalesced"] == 1


def test_a_caller_keeps_waiting_while_its_call_is_queued_past_the_timeout(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    """A queue at AWS's rate is not a dead gateway: the caller waits on (no abandoned call, no token wasted)."""
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Create=1:1"), default_timeout=0.2)
    results: dict[str, Any] = {}

    def create(name: str) -> None:
        try:
            results[name] = gateway.call("elbv2", "CreateRule", {"Name": name})
        except AwsApiError as exc:
            results[name] = exc

    threads = [threading.Thread(target=create, args=(f"r{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    eventually(lambda: adapter.count() == 1)  # one token: the other two wait, several windows long
    eventually(lambda: gateway.debug_state()["totals"]["renewed"] >= 4)  # each asked twice: still held
    assert len(results) == 1, results

    def all_answered() -> bool:
        timers.advance(0.5)
        return len(results) == 3

    eventually(all_answered, interval=0.01)
    for thread in threads:
        thread.join(timeout=5)
    assert all(isinstance(r, PMap) for r in results.values()), results
    assert adapter.count() == 3


def test_a_caller_that_gives_up_withdraws_its_queued_call(
    make_gateway: Callable[..., AwsGateway], timers: FakeTimers
) -> None:
    adapter = FakeAdapter()
    gateway = make_gateway(adapter, rules=parse_throttle_overrides(f"{ELB}:^Create=1:1"), default_timeout=0.2)
    gateway.max_wait = 0.0  # give up after the first window
    first = gateway.submit("elbv2", "CreateRule", {"Name": "first"})
    eventually(lambda: adapter.count() == 1)
    with pytest.raises(AwsApiError) as info:
        gateway.call("elbv2", "CreateRule", {"Name": "abandoned"})
    assert info.value.code == "GatewayUnavailable"
    settled(gateway, queued=0)
    timers.advance(5.0)
    assert first.get(timeout=1) == {"Echo": {"Name": "first"}}
    assert [params["Name"] for _, _, params in adapter.calls] == ["first"]
