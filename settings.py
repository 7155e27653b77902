"""The controller's configuration: one frozen Settings record, built once from the command line.

Flag names and defaults are the upstream controller's (see shared/reference/lbc-features.md §9.1) where they
apply, so a user's Helm values or manifests carry over. Every field is documented next to its flag; nothing else
in the code reads flags or the environment for configuration, except the AWS SDK's own standard variables
(`AWS_ENDPOINT_URL`, credentials, IRSA), which boto3 reads itself.

A missing or invalid flag raises `SettingsError` with one line saying which flag and why; the CLI prints it and
exits with status 2 before anything starts.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from adapters.debug_http import is_disabled, parse_address
from model.throttle import DEFAULT_THROTTLE_RULES, ThrottleRule, parse_throttle_spec

#: Feature gates known to upstream (§9.2) with their code defaults. Unknown keys are a start-up error.
FEATURE_GATE_DEFAULTS: dict[str, bool] = {
    "ListenerRulesTagging": True,
    "WeightedTargetGroups": True,
    "ServiceTypeLoadBalancerOnly": False,
    "EndpointsFailOpen": True,
    "EnableServiceController": True,
    "EnableIPTargetType": True,
    "EnableTCPUDPListener": False,
    "EnableRGTAPI": False,
    "SubnetsClusterTagCheck": True,
    "NLBHealthCheckAdvancedConfig": True,
    "NLBSecurityGroup": True,
    "ALBSingleSubnet": False,
    "LBCapacityReservation": True,
    "SubnetDiscoveryByReachability": True,
    "NLBGatewayAPI": True,
    "ALBGatewayAPI": True,
    "GatewayListenerSet": True,
    "GlobalAcceleratorController": False,
    "EnhancedDefaultBehavior": False,
    "EnableDefaultTagsLowPriority": False,
    "ALBTargetControlAgent": False,
    "EnableCertificateManagement": False,
    "IngressPlanAnnotation": False,
}

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class SettingsError(ValueError):
    """A flag is missing or invalid; the message is one line naming the flag."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the controller is configured with. Immutable; passed to whoever needs a part of it."""

    #: --cluster-name: the cluster's name, written into the `elbv2.k8s.aws/cluster` tag and used for subnet and
    #: security-group discovery. Required.
    cluster_name: str
    #: --aws-region: AWS region (upstream reads IMDS when absent; we also accept AWS_REGION/AWS_DEFAULT_REGION).
    aws_region: str = "us-west-2"
    #: --aws-vpc-id: the cluster's VPC; discovered from the nodes' instances when empty.
    aws_vpc_id: str = ""
    #: --aws-api-throttle: client-side token buckets (upstream defaults, replaced per service ID mentioned).
    aws_api_throttle: tuple[ThrottleRule, ...] = DEFAULT_THROTTLE_RULES
    #: --aws-max-retries: attempts for a retryable AWS error (throttling, 5xx, timeouts).
    aws_max_retries: int = 10
    #: --aws-max-in-flight: AWS calls the gateway runs at once (ours; upstream has no equivalent).
    aws_max_in_flight: int = 8
    #: --ingress-class: the class name handled through the legacy `kubernetes.io/ingress.class` annotation.
    ingress_class: str = "alb"
    #: --default-target-type: `instance` or `ip`.
    default_target_type: str = "instance"
    #: --default-load-balancer-scheme: `internal` or `internet-facing`.
    default_load_balancer_scheme: str = "internal"
    #: --default-ssl-policy: listener SSL policy when the Ingress names none.
    default_ssl_policy: str = "ELBSecurityPolicy-2016-08"
    #: --enable-backend-security-group: the shared backend SG (on every managed LB; the source of node rules).
    enable_backend_security_group: bool = True
    #: --enable-manage-backend-security-group-rules: default of the manage-backend-security-group-rules
    #: annotation (only meaningful with security-groups).
    enable_manage_backend_security_group_rules: bool = False
    #: --disable-restricted-sg-rules: open all ports from the backend SG instead of the exact target ports.
    disable_restricted_sg_rules: bool = False
    #: --default-tags: tags put on every AWS resource we create.
    default_tags: tuple[tuple[str, str], ...] = ()
    #: --watch-namespace: watch only this namespace (empty: all).
    watch_namespace: str = ""
    #: --sync-period: every object is reconciled again at least this often (seconds).
    sync_period: float = 10 * 3600.0
    #: --feature-gates: upstream's gates, defaults overridden by `Key=bool,...`.
    feature_gates: tuple[tuple[str, bool], ...] = tuple(sorted(FEATURE_GATE_DEFAULTS.items()))
    #: --enable-leader-election / --leader-election-id / --leader-election-namespace.
    enable_leader_election: bool = True
    leader_election_id: str = "aws-load-balancer-controller-leader"
    leader_election_namespace: str = "kube-system"
    #: --metrics-bind-addr: Prometheus `/metrics` only (also served on the debug address); `0`: no listener.
    metrics_bind_addr: str = ":8080"
    #: --health-probe-bind-addr: `/healthz` and `/readyz` only; `0`: no listener.
    health_probe_bind_addr: str = ":61779"
    #: --webhook-bind-port / --webhook-addr / --webhook-cert-dir: the HTTPS admission webhook server.
    webhook_bind_port: int = 9443
    webhook_addr: str = ""
    webhook_cert_dir: str = "/tmp/k8s-webhook-server/serving-certs"
    #: --webhook-cert-file / --webhook-key-file: file names of the serving certificate and key in the cert dir
    #: (generated, with a CA in `ca.crt`, when both are missing).
    webhook_cert_file: str = "tls.crt"
    webhook_key_file: str = "tls.key"
    #: --webhook-register: create/update the MutatingWebhookConfiguration at start (lbc's own; the chart
    #: installs it upstream). --webhook-service `namespace/name`: register a service reference (and add its
    #: DNS names to a generated certificate) instead of the URL of --webhook-addr.
    webhook_register: bool = False
    webhook_service: str = ""
    #: --enable-pod-readiness-gate-inject: the pod webhook adds readiness gates (§7); off: it patches nothing.
    enable_pod_readiness_gate_inject: bool = True
    #: --log-level: `debug`, `info`, `warning` or `error`.
    log_level: str = "info"
    #: --health-check-time-scale (ours): how many times faster than its settings AWS runs health checks. 1 in
    #: AWS; the sandbox's target-health simulation can run faster, and the readiness poller must know.
    health_check_time_scale: float = 1.0
    #: --readiness-describe-rate (ours): DescribeTargetHealth calls/s the readiness poller may spend at most.
    readiness_describe_rate: float = 10.0
    #: --kubeconfig: path of a kubeconfig; empty means in-cluster, then the default kubeconfig.
    kubeconfig: str = ""
    #: --debug-addr: the debug HTTP server (actors, metrics, health), loopback unless told otherwise; `0`: off.
    debug_addr: str = "127.0.0.1:8099"
    #: Reconcile backoff after temporary errors (seconds, one entry per consecutive failure, last one repeats).
    reconcile_backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
    #: Ceiling on the number of actors the supervisor spawns (each is a thread; see test-infra.md §C).
    max_actors: int = 10_000
    #: Anything else, e.g. flags of later features, as (name, value) pairs.
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def feature(self, name: str) -> bool:
        """Whether the feature gate `name` is on."""
        return dict(self.feature_gates)[name]


def parse_duration(text: str) -> float:
    """A Go-style duration (`10h`, `1m30s`, `500ms`) or plain seconds, as seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.match(text):
        raise ValueError(f"invalid duration {text!r} (expected e.g. 10h, 1m30s, 500ms)")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(text))


def parse_string_map(text: str) -> tuple[tuple[str, str], ...]:
    """Upstream's stringMap flag format: `k1=v1,k2=v2`."""
    pairs: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid key=value pair {part!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def parse_feature_gates(text: str) -> tuple[tuple[str, bool], ...]:
    """`Key=true,Other=false` over upstream's defaults; an unknown key is an error."""
    gates = dict(FEATURE_GATE_DEFAULTS)
    for key, value in parse_string_map(text):
        if key not in gates:
            raise ValueError(f"unknown feature gate {key!r}")
        if value.lower() not in ("true", "false"):
            raise ValueError(f"feature gate {key} wants true or false, not {value!r}")
        gates[key] = value.lower() == "true"
    return tuple(sorted(gates.items()))


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


#: The flag sections that shape what is built from the cluster (shared by `lbc plan`): every section but the
#: process's own (leader election, listeners).
BUILD_FLAG_SECTIONS: tuple[str, ...] = ("cluster", "AWS", "load balancer defaults", "logging")


def add_controller_flags(parser: argparse.ArgumentParser, *, sections: Collection[str] | None = None) -> None:
    """Declare the controller's flags (upstream names and defaults), grouped as a newcomer looks for them.

    `sections` (default: all) declares only those sections (see BUILD_FLAG_SECTIONS); `settings_from_args`
    gives the flags left out their defaults."""
    d = Settings(cluster_name="-")
    left_out = argparse.ArgumentParser(add_help=False)

    def section(name: str, title: str = "", description: str | None = None) -> argparse._ArgumentGroup:
        target = parser if sections is None or name in sections else left_out
        return target.add_argument_group(title or name, description)

    cluster = section("cluster")
    cluster.add_argument(
        "--cluster-name",
        metavar="NAME",
        default="",
        help="the cluster's name, written into tags and used for discovery (required)",
    )
    cluster.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default="",
        help="kubeconfig path (default: in-cluster config, then ~/.kube/config)",
    )
    cluster.add_argument(
        "--watch-namespace", metavar="NAMESPACE", default="", help="watch only this namespace (default: all)"
    )
    cluster.add_argument(
        "--ingress-class",
        metavar="CLASS",
        default=d.ingress_class,
        help="class handled via the kubernetes.io/ingress.class annotation",
    )
    cluster.add_argument(
        "--sync-period",
        metavar="DURATION",
        default="10h",
        help="reconcile everything again this often; a Go duration such as 10h, 90s or 500ms",
    )
    cluster.add_argument(
        "--feature-gates",
        default="",
        metavar="GATE=BOOL,...",
        help="upstream's feature gates over their defaults, e.g. ALBSingleSubnet=true,EnableRGTAPI=false",
    )

    aws = section(
        "AWS",
        "",
        "The endpoint and credentials come from the standard variables (AWS_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, IRSA's AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN).",
    )
    aws.add_argument(
        "--aws-region",
        metavar="REGION",
        default="",
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, us-west-2)",
    )
    aws.add_argument(
        "--aws-vpc-id",
        metavar="VPC_ID",
        default=d.aws_vpc_id,
        help="the cluster's VPC id (default: discovered)",
    )
    aws.add_argument(
        "--aws-api-throttle",
        default="",
        metavar="SERVICE:OPREGEX=RATE:BURST,...",
        help="client-side AWS throttles, e.g. 'Elastic Load Balancing v2:^Describe.*=20:100' (replaces "
        "the defaults of each service it names)",
    )
    aws.add_argument(
        "--aws-max-retries",
        metavar="N",
        type=int,
        default=d.aws_max_retries,
        help="attempts for a retryable AWS error",
    )
    aws.add_argument(
        "--aws-max-in-flight",
        metavar="N",
        type=int,
        default=d.aws_max_in_flight,
        help="AWS calls in flight at once (lbc's own)",
    )

    defaults = section("load balancer defaults", "load balancer defaults (an annotation overrides them)")
    defaults.add_argument("--default-target-type", default=d.default_target_type, choices=["instance", "ip"])
    defaults.add_argument(
        "--default-load-balancer-scheme",
        default=d.default_load_balancer_scheme,
        choices=["internal", "internet-facing"],
    )
    defaults.add_argument(
        "--default-ssl-policy", metavar="POLICY", default=d.default_ssl_policy, help="listener SSL policy"
    )
    defaults.add_argument(
        "--default-tags", default="", metavar="K=V,...", help="tags on every AWS resource created"
    )
    for flag, default, text in (
        (
            "--enable-backend-security-group",
            d.enable_backend_security_group,
            "the shared backend security group",
        ),
        (
            "--enable-manage-backend-security-group-rules",
            d.enable_manage_backend_security_group_rules,
            "default of the manage-backend-security-group-rules annotation",
        ),
        (
            "--disable-restricted-sg-rules",
            d.disable_restricted_sg_rules,
            "open all ports from the backend SG",
        ),
    ):
        defaults.add_argument(
            flag, type=_bool, nargs="?", const=True, default=default, metavar="BOOL", help=text
        )

    election = section("leader election")
    election.add_argument(
        "--enable-leader-election",
        type=_bool,
        nargs="?",
        const=True,
        default=d.enable_leader_election,
        metavar="BOOL",
        help="campaign for a Lease; only the leader reconciles (--enable-leader-election=false to run alone)",
    )
    election.add_argument(
        "--leader-election-id", metavar="NAME", default=d.leader_election_id, help="the Lease's name"
    )
    election.add_argument(
        "--leader-election-namespace",
        metavar="NAMESPACE",
        default=d.leader_election_namespace,
        help="the Lease's namespace",
    )

    listen = section("listeners", "", "Addresses are host:port, :port (every interface) or 0 (no listener).")
    listen.add_argument(
        "--metrics-bind-addr", metavar="ADDR", default=d.metrics_bind_addr, help="Prometheus /metrics only"
    )
    listen.add_argument(
        "--health-probe-bind-addr",
        metavar="ADDR",
        default=d.health_probe_bind_addr,
        help="/healthz and /readyz only",
    )
    listen.add_argument(
        "--debug-addr",
        metavar="ADDR",
        default=d.debug_addr,
        help="everything: /actors, /actors/<kind>/<key>, /debug, /metrics, probes and a dashboard at /",
    )
    listen.add_argument(
        "--webhook-bind-port",
        metavar="PORT",
        type=int,
        default=d.webhook_bind_port,
        help="admission webhooks",
    )
    listen.add_argument(
        "--webhook-addr", metavar="ADDR", default="", help="host:port of the webhooks (overrides the port)"
    )
    listen.add_argument(
        "--webhook-cert-dir",
        metavar="DIR",
        default=d.webhook_cert_dir,
        help="tls.crt and tls.key of the webhooks",
    )
    listen.add_argument(
        "--webhook-cert-file", metavar="NAME", default=d.webhook_cert_file, help="certificate file in the dir"
    )
    listen.add_argument(
        "--webhook-key-file", metavar="NAME", default=d.webhook_key_file, help="private key file in the dir"
    )
    listen.add_argument(
        "--webhook-register",
        type=_bool,
        nargs="?",
        const=True,
        default=d.webhook_register,
        metavar="BOOL",
        help="create/update the MutatingWebhookConfiguration aws-load-balancer-webhook at start",
    )
    listen.add_argument(
        "--webhook-service",
        metavar="NAMESPACE/NAME",
        default=d.webhook_service,
        help="register this Service instead of the --webhook-addr URL (and add its names to a generated cert)",
    )
    listen.add_argument(
        "--enable-pod-readiness-gate-inject",
        type=_bool,
        nargs="?",
        const=True,
        default=d.enable_pod_readiness_gate_inject,
        metavar="BOOL",
        help="inject target-health readiness gates into new pods of labelled namespaces",
    )
    listen.add_argument(
        "--readiness-describe-rate",
        type=float,
        default=d.readiness_describe_rate,
        metavar="N",
        help="DescribeTargetHealth calls/s the readiness poller may spend at most (ours)",
    )
    listen.add_argument(
        "--health-check-time-scale",
        type=float,
        default=d.health_check_time_scale,
        metavar="X",
        help="for the sandbox: AWS runs health checks X times faster than configured (ours; 1 in AWS)",
    )

    section("logging").add_argument(
        "--log-level", default=d.log_level, choices=["debug", "info", "warning", "error"]
    )


def _check_address(flag: str, address: str, *, may_disable: bool = True) -> None:
    if may_disable and is_disabled(address):
        return
    try:
        parse_address(address)
    except ValueError as exc:
        raise SettingsError(f"{flag}: {exc}") from None


def _flag_defaults() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    add_controller_flags(parser)
    return parser.parse_args([])


def settings_from_args(args: argparse.Namespace, *, env: dict[str, str] | None = None) -> Settings:
    """Validate the parsed flags into Settings; raise SettingsError with one line on the first problem.
    Flags `args` lacks (a command that declares only some sections) take their defaults."""
    args = argparse.Namespace(**{**vars(_flag_defaults()), **vars(args)})
    environ = env or {}
    cluster_name = args.cluster_name.strip()
    if not cluster_name:
        raise SettingsError("--cluster-name is required")
    if not _CLUSTER_NAME.match(cluster_name):
        raise SettingsError(f"--cluster-name {cluster_name!r} is not a valid cluster name")
    region = args.aws_region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-west-2"
    try:
        throttle = (
            parse_throttle_spec(args.aws_api_throttle) if args.aws_api_throttle else DEFAULT_THROTTLE_RULES
        )
    except ValueError as exc:
        raise SettingsError(f"--aws-api-throttle: {exc}") from None
    try:
        sync_period = parse_duration(args.sync_period)
    except ValueError as exc:
        raise SettingsError(f"--sync-period: {exc}") from None
    try:
        gates = parse_feature_gates(args.feature_gates)
    except ValueError as exc:
        raise SettingsError(f"--feature-gates: {exc}") from None
    try:
        tags = parse_string_map(args.default_tags)
    except ValueError as exc:
        raise SettingsError(f"--default-tags: {exc}") from None
    if args.aws_max_retries < 0:
        raise SettingsError("--aws-max-retries must be >= 0")
    if args.aws_max_in_flight < 1:
        raise SettingsError("--aws-max-in-flight must be >= 1")
    if args.health_check_time_scale <= 0 or args.readiness_describe_rate <= 0:
        raise SettingsError("--health-check-time-scale and --readiness-describe-rate must be > 0")
    if not 0 < args.webhook_bind_port < 65536:
        raise SettingsError("--webhook-bind-port must be a TCP port")
    _check_address("--metrics-bind-addr", args.metrics_bind_addr)
    _check_address("--health-probe-bind-addr", args.health_probe_bind_addr)
    _check_address("--debug-addr", args.debug_addr)
    if args.webhook_addr:
        _check_address("--webhook-addr", args.webhook_addr, may_disable=False)
    if args.webhook_service and not re.fullmatch(
        r"[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9]*", args.webhook_service
    ):
        raise SettingsError("--webhook-service must be namespace/name")
    return Settings(
        cluster_name=cluster_name,
        aws_region=region,
        aws_vpc_id=args.aws_vpc_id,
        aws_api_throttle=throttle,
        aws_max_retries=args.aws_max_retries,
        aws_max_in_flight=args.aws_max_in_flight,
        ingress_class=args.ingress_class,
        default_target_type=args.default_target_type,
        default_load_balancer_scheme=args.default_load_balancer_scheme,
        default_ssl_policy=args.default_ssl_policy,
        default_tags=tags,
        enable_backend_security_group=args.enable_backend_security_group,
        enable_manage_backend_security_group_rules=args.enable_manage_backend_security_group_rules,
        disable_restricted_sg_rules=args.disable_restricted_sg_rules,
        watch_namespace=args.watch_namespace,
        sync_period=sync_period,
        feature_gates=gates,
        enable_leader_election=args.enable_leader_election,
        leader_election_id=args.leader_election_id,
        leader_election_namespace=args.leader_election_namespace,
        metrics_bind_addr=args.metrics_bind_addr,
        health_probe_bind_addr=args.health_probe_bind_addr,
        webhook_bind_port=args.webhook_bind_port,
        webhook_addr=args.webhook_addr,
        webhook_cert_dir=args.webhook_cert_dir,
        webhook_cert_file=args.webhook_cert_file,
        webhook_key_file=args.webhook_key_file,
        webhook_register=args.webhook_register,
        webhook_service=args.webhook_service,
        enable_pod_readiness_gate_inject=args.enable_pod_readiness_gate_inject,
        readiness_describe_rate=args.readiness_describe_rate,
        health_check_time_scale=args.health_check_time_scale,
        log_level=args.log_level,
        kubeconfig=args.kubeconfig,
        debug_addr=args.debug_addr,
    )
