"""The AWS double of the sandbox: moto in-process, seeded with a cluster VPC, with weather and target health.

Import from here: `AwsSandbox`, `start_aws_sandbox`, `WeatherConfig`, `ThrottleRule`, `TargetHealthSim`,
`NodeInstance`, `SeededNetwork`. Two moto settings are defaulted before moto is first imported (through this
package; an explicit environment value wins): `MOTO_ACM_VALIDATION_WAIT=0`, so requested ACM certificates are
ISSUED at once instead of after 60 s, and `MOTO_EC2_LOAD_DEFAULT_AMIS=false`, which cuts a reset from about
0.8 s to 0.2 s (the controller needs no AMIs; moto does not validate image ids).
"""

from __future__ import annotations

import os

os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

from sandbox.aws.health import TargetHealth, TargetHealthSim
from sandbox.aws.seed import NodeInstance, SeededNetwork
from sandbox.aws.server import AwsSandbox, start_aws_sandbox
from sandbox.aws.weather import ThrottleRule, Weather, WeatherConfig

__all__ = [
    "AwsSandbox",
    "NodeInstance",
    "SeededNetwork",
    "TargetHealth",
    "TargetHealthSim",
    "ThrottleRule",
    "Weather",
    "WeatherConfig",
    "start_aws_sandbox",
]
