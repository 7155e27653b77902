"""The controller's flags: every flag of the issue reaches Settings, values parse as upstream's do, and a bad
command line is one clear line on stderr with exit status 2 (through `cli.main`, as the `lbc` script runs it)."""

from __future__ import annotations

from typing import Any

import pytest

import cli
from model.throttle import DEFAULT_THROTTLE_RULES
from settings import (
    FEATURE_GATE_DEFAULTS,
    Settings,
    SettingsError,
    parse_duration,
    parse_feature_gates,
    parse_string_map,
    settings_from_args,
)

ELBV2 = "Elastic Load Balancing v2"


def parse(*argv: str, env: dict[str, str] | None = None) -> Settings:
    args = cli.build_parser().parse_args(["controller", *argv])
    return settings_from_args(args, env=env or {})


def test_every_flag_reaches_settings() -> None:
    s = parse(
        "--cluster-name", "prod-1", "--aws-region", "eu-west-1", "--aws-vpc-id", "vpc-0abc",
        "--aws-api-throttle", f"{ELBV2}:^Describe.*=20:100", "--aws-max-retries", "3",
        "--aws-max-in-flight", "4", "--ingress-class", "internal-alb", "--default-target-type", "ip",
        "--default-load-balancer-scheme", "internet-facing", "--default-ssl-policy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "--default-tags", "team=web,env=prod", "--watch-namespace", "apps", "--sync-period", "1h30m",
        "--feature-gates", "ALBSingleSubnet=true,EnableRGTAPI=true", "--enable-leader-election=false",
        "--leader-election-id", "my-lease", "--leader-election-namespace", "lbc",
        "--metrics-bind-addr", "127.0.0.1:9080", "--health-probe-bind-addr", ":9081", "--webhook-bind-port", "9444",
        "--webhook-addr", "127.0.0.1:9445", "--webhook-cert-dir", "/certs", "--log-level", "debug",
        "--kubeconfig", "/kube/config", "--debug-addr", "0",
    )  # fmt: skip
    assert (s.cluster_name, s.aws_region, s.aws_vpc_id) == ("prod-1", "eu-west-1", "vpc-0abc")
    assert [r.describe() for r in s.aws_api_throttle if r.service_id == ELBV2] == [
        f"{ELBV2}:^Describe.*=20:100"
    ]
    assert (s.aws_max_retries, s.aws_max_in_flight) == (3, 4)
    assert (s.ingress_class, s.default_target_type, s.default_load_balancer_scheme) == (
        "internal-alb", "ip", "internet-facing",
    )  # fmt: skip
    assert s.default_ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert s.default_tags == (("team", "web"), ("env", "prod"))
    assert (s.watch_namespace, s.sync_period) == ("apps", 5400.0)
    assert s.feature("ALBSingleSubnet") and s.feature("EnableRGTAPI")
    assert s.feature("ListenerRulesTagging")  # a gate not mentioned keeps its default
    assert (s.enable_leader_election, s.leader_election_id, s.leader_election_namespace) == (
        False, "my-lease", "lbc",
    )  # fmt: skip
    assert (s.metrics_bind_addr, s.health_probe_bind_addr, s.debug_addr) == ("127.0.0.1:9080", ":9081", "0")
    assert (s.webhook_bind_port, s.webhook_addr, s.webhook_cert_dir) == (9444, "127.0.0.1:9445", "/certs")
    assert (s.log_level, s.kubeconfig) == ("debug", "/kube/config")


def test_defaults_are_upstreams() -> None:
    s = parse("--cluster-name", "c")
    assert s == Settings(cluster_name="c")
    assert (s.metrics_bind_addr, s.health_probe_bind_addr, s.debug_addr) == (
        ":8080",
        ":61779",
        "127.0.0.1:8099",
    )
    assert s.enable_leader_election is True
    assert s.sync_period == 36000.0
    assert s.aws_api_throttle == DEFAULT_THROTTLE_RULES
    assert dict(s.feature_gates) == FEATURE_GATE_DEFAULTS


def test_region_falls_back_to_the_standard_variables() -> None:
    assert parse("--cluster-name", "c", env={"AWS_DEFAULT_REGION": "ap-south-1"}).aws_region == "ap-south-1"
    env = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "ap-south-1"}
    assert parse("--cluster-name", "c", env=env).aws_region == "eu-central-1"
    assert parse("--cluster-name", "c", "--aws-region", "us-east-2", env=env).aws_region == "us-east-2"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--enable-leader-election"], True),  # a bare bool flag, as Go's pflag
        (["--enable-leader-election=false"], False),
        (["--enable-leader-election", "false"], False),
        (["--enable-leader-election=True"], True),
    ],
)
def test_leader_election_flag_forms(argv: list[str], expected: bool) -> None:
    assert parse("--cluster-name", "c", *argv).enable_leader_election is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10h", 36000.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h0m0.5s", 3600.5), ("2.5", 2.5), ("90", 90.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10x", "h", "", "1 h", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_string_maps() -> None:
    assert parse_string_map("a=1, b = 2 ,c=") == (("a", "1"), ("b", "2"), ("c", ""))
    assert parse_string_map("") == ()
    assert parse_string_map("k=v=w") == (("k", "v=w"),)
    for bad in ("novalue", "=x", "a=1,oops"):
        with pytest.raises(ValueError, match="invalid key=value"):
            parse_string_map(bad)


def test_feature_gates() -> None:
    gates = dict(parse_feature_gates("ALBSingleSubnet=TRUE, ListenerRulesTagging=false"))
    assert gates == {**FEATURE_GATE_DEFAULTS, "ALBSingleSubnet": True, "ListenerRulesTagging": False}
    with pytest.raises(ValueError, match="unknown feature gate 'Nope'"):
        parse_feature_gates("Nope=true")
    with pytest.raises(ValueError, match="wants true or false"):
        parse_feature_gates("ALBSingleSubnet=yes-please")


def test_a_throttle_spec_replaces_the_defaults_of_the_services_it_names_only() -> None:
    rules = parse("--cluster-name", "c", "--aws-api-throttle", f"{ELBV2}:^Modify.*=1:2,{ELBV2}:.*=9:9")
    by_service: dict[str, list[str]] = {}
    for rule in rules.aws_api_throttle:
        by_service.setdefault(rule.service_id, []).append(rule.describe())
    assert by_service[ELBV2] == [f"{ELBV2}:^Modify.*=1:2", f"{ELBV2}:.*=9:9"]
    untouched = [r.describe() for r in DEFAULT_THROTTLE_RULES if r.service_id == "WAFV2"]
    assert by_service["WAFV2"] == untouched


def test_the_cluster_name_is_required() -> None:
    with pytest.raises(SettingsError, match=r"^--cluster-name is required$"):
        parse()
    with pytest.raises(SettingsError, match="not a valid cluster name"):
        parse("--cluster-name", "bad name!")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([], "--cluster-name"),
        (["--cluster-name", "c", "--aws-max-retries", "many"], "--aws-max-retries"),
        (["--cluster-name", "c", "--aws-max-retries", "-1"], "--aws-max-retries"),
        (["--cluster-name", "c", "--aws-max-in-flight", "0"], "--aws-max-in-flight"),
        (["--cluster-name", "c", "--sync-period", "10 hours"], "--sync-period"),
        (["--cluster-name", "c", "--feature-gates", "Nope=true"], "--feature-gates"),
        (["--cluster-name", "c", "--default-tags", "team"], "--default-tags"),
        (["--cluster-name", "c", "--aws-api-throttle", "garbage"], "--aws-api-throttle"),
        (["--cluster-name", "c", "--aws-api-throttle", f"{ELBV2}:(=1:2"], "--aws-api-throttle"),
        (["--cluster-name", "c", "--default-target-type", "pod"], "--default-target-type"),
        (["--cluster-name", "c", "--enable-leader-election", "maybe"], "--enable-leader-election"),
        (["--cluster-name", "c", "--metrics-bind-addr", "8080"], "--metrics-bind-addr"),
        (["--cluster-name", "c", "--health-probe-bind-addr", ":99999"], "--health-probe-bind-addr"),
        (["--cluster-name", "c", "--debug-addr", "::1:80"], "--debug-addr"),
        (["--cluster-name", "c", "--webhook-addr", "0"], "--webhook-addr"),
        (["--cluster-name", "c", "--webhook-bind-port", "70000"], "--webhook-bind-port"),
        (["--cluster-name", "c", "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_a_bad_command_line_is_one_clear_line_and_exit_2(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["controller", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lbc controller: ")
    assert flag in lines[0]


def test_help_shows_a_runnable_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["controller", "--help"]) == 0
    text: Any = capsys.readouterr().out
    assert text.startswith("usage: lbc controller --cluster-name NAME")
    assert "lbc apiserver" in text and "lbc controller --cluster-name demo" in text
    assert "AWS_ENDPOINT_URL=" in text and "AWS_ACCESS_KEY_ID=" in text
    for flag in ("--metrics-bind-addr", "--health-probe-bind-addr", "--debug-addr", "--aws-api-throttle"):
        assert flag in text
    assert "(default: :8080)" in text and "(default: :61779)" in text
