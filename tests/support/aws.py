"""Fixtures for the AWS sandbox (owned by the AWS sandbox work).

* `aws_sandbox` (session): one in-process sandbox for the whole run, calm weather (no latency, no
  throttling, no faults) so other tests are fast, target health at `SESSION_TIME_SCALE` (a default 30 s x 5
  health-check schedule takes 5 s).
* `fresh_aws` (function): the same sandbox, reset (moto state, seed, counters) with calm weather and the
  session time scale; tests may change weather, time scale or registration time; teardown puts them back.
* `aws_client(sandbox, service, ...)`: a boto3 client for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily below: moto and boto3 cost about a second, which unit-only runs skip
    from sandbox.aws import AwsSandbox

SESSION_TIME_SCALE = 30.0
SESSION_REGISTRATION_S = 5.0


def aws_client(
    sandbox: AwsSandbox, service_name: str, *, max_attempts: int = 3, read_timeout: float = 60.0
) -> Any:
    """A boto3 client pointed at `sandbox` (standard retries; `max_attempts=1` disables them)."""
    return sandbox.client(service_name, max_attempts=max_attempts, read_timeout=read_timeout)


@pytest.fixture(scope="session")
def aws_sandbox() -> Iterator[AwsSandbox]:
    from sandbox.aws import AwsSandbox, WeatherConfig

    sandbox = AwsSandbox(weather=WeatherConfig.calm(), time_scale=SESSION_TIME_SCALE)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _calm_down(sandbox: AwsSandbox) -> None:
    from sandbox.aws import WeatherConfig

    sandbox.weather.configure(WeatherConfig.calm())
    sandbox.health.time_scale = SESSION_TIME_SCALE
    sandbox.health.registration_s = SESSION_REGISTRATION_S


@pytest.fixture
def fresh_aws(aws_sandbox: AwsSandbox) -> Iterator[AwsSandbox]:
    _calm_down(aws_sandbox)
    aws_sandbox.reset()
    try:
        yield aws_sandbox
    finally:
        _calm_down(aws_sandbox)
