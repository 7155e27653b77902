"""Per-Ingress and per-backend settings (model/ingress_config.py): every annotation, params and Service precedence."""

from __future__ import annotations

from typing import Any

import pytest

from model.annotations import AnnotationError
from model.ingress_config import (
    BackendConfig,
    ConfigDefaults,
    IngressConfig,
    ListenPort,
    backend_config,
    group_order,
    ingress_config,
    parse_listen_ports,
    unknown_annotations,
)
from model.objects import KubeObject, from_raw
from model.stack import Action, Condition, Ref, TargetGroupTuple, Transform

P = "alb.ingress.kubernetes.io/"


def ingress(annotations: dict[str, str] | None = None, *, name: str = "web") -> KubeObject:
    meta = {"name": name, "namespace": "default", "uid": "u1", "annotations": annotations or {}}
    return from_raw("Ingress", {"metadata": meta, "spec": {}})


def service(annotations: dict[str, str] | None = None, *, name: str = "svc") -> KubeObject:
    meta = {"name": name, "namespace": "default", "uid": "u2", "annotations": annotations or {}}
    return from_raw("Service", {"metadata": meta, "spec": {"ports": [{"port": 80}]}})


def params(spec: dict[str, Any], *, name: str = "class-params") -> KubeObject:
    return from_raw("IngressClassParams", {"metadata": {"name": name, "uid": "u3"}, "spec": spec})


def config(annotations: dict[str, str], spec: dict[str, Any] | None = None) -> IngressConfig:
    return ingress_config(ingress(annotations), params=params(spec) if spec is not None else None)


def config_error(annotations: dict[str, str], spec: dict[str, Any] | None = None) -> AnnotationError:
    with pytest.raises(AnnotationError) as info:
        config(annotations, spec)
    return info.value


# -- IngressConfig: defaults and every annotation -----------------------------------------------------------
def test_no_annotations_means_nothing_specified() -> None:
    assert ingress_config(ingress(), params=None) == IngressConfig(ingress_key="default/web")
    assert ingress_config(ingress(), params=params({})) == IngressConfig(ingress_key="default/web")


def test_tutorial_ingress() -> None:
    cfg = config({
        P + "load-balancer-name": "nginx", P + "target-type": "ip", "kubernetes.io/ingress.class": "alb",
        P + "scheme": "internal", P + "tags": "Project=bgxwz", P + "success-codes": "200,404",
        P + "listen-ports": '[{"HTTP":80}]', P + "security-groups": "sg-0123",
        P + "target-group-attributes": "stickiness.enabled=true,stickiness.lb_cookie.duration_seconds=120",
    })  # fmt: skip
    assert cfg == IngressConfig(
        ingress_key="default/web", load_balancer_name="nginx", scheme="internal", tags=(("Project", "bgxwz"),),
        listen_ports=(ListenPort("HTTP", 80),), security_groups=("sg-0123",),
    )  # fmt: skip


GOOD = [
    ("group.order", "-1000", "group_order", -1000),
    ("group.order", "1000", "group_order", 1000),
    ("load-balancer-name", "my-lb-01", "load_balancer_name", "my-lb-01"),
    ("load-balancer-name", "a" * 32, "load_balancer_name", "a" * 32),
    ("scheme", "internet-facing", "scheme", "internet-facing"),
    ("scheme", "internal", "scheme", "internal"),
    ("ip-address-type", "ipv4", "ip_address_type", "ipv4"),
    ("ip-address-type", "dualstack", "ip_address_type", "dualstack"),
    ("ip-address-type", "dualstack-without-public-ipv4", "ip_address_type", "dualstack-without-public-ipv4"),
    ("subnets", "subnet-1, my-subnet-name", "subnets", ("subnet-1", "my-subnet-name")),
    ("subnets", "", "subnets", ()),
    ("security-groups", "sg-1,web-sg", "security_groups", ("sg-1", "web-sg")),
    ("security-groups", " , ", "security_groups", ()),
    ("manage-backend-security-group-rules", "true", "manage_backend_security_group_rules", True),
    ("manage-backend-security-group-rules", "false", "manage_backend_security_group_rules", False),
    ("inbound-cidrs", "10.0.0.0/8, 2001:db8::/32", "inbound_cidrs", ("10.0.0.0/8", "2001:db8::/32")),
    ("security-group-prefix-lists", "pl-1,pl-2", "security_group_prefix_lists", ("pl-1", "pl-2")),
    ("customer-owned-ipv4-pool", "ipv4pool-coip-1", "customer_owned_ipv4_pool", "ipv4pool-coip-1"),
    ("ipam-ipv4-pool-id", "ipam-pool-1", "ipam_ipv4_pool_id", "ipam-pool-1"),
    ("ipam-ipv4-pool-id", "", "ipam_ipv4_pool_id", None),
    (
        "load-balancer-attributes",
        "idle_timeout.timeout_seconds=600, deletion_protection.enabled=true",
        "load_balancer_attributes",
        (("deletion_protection.enabled", "true"), ("idle_timeout.timeout_seconds", "600")),
    ),
    ("minimum-load-balancer-capacity", "CapacityUnits=1000", "minimum_capacity_units", 1000),
    ("minimum-load-balancer-capacity", "CapacityUnits=0", "minimum_capacity_units", 0),
    ("minimum-load-balancer-capacity", "", "minimum_capacity_units", None),
    ("listen-ports", '[{"HTTP": 80}, {"HTTPS": 443}]', "listen_ports", (ListenPort("HTTP", 80), ListenPort("HTTPS", 443))),
    ("listen-ports", '[{"HTTPS": 8443, "HTTP": 8080}]', "listen_ports", (ListenPort("HTTP", 8080), ListenPort("HTTPS", 8443))),
    ("listen-ports", '[{"HTTP": 80}, {"HTTPS": 80}]', "listen_ports", (ListenPort("HTTPS", 80),)),
    ("ssl-redirect", "443", "ssl_redirect", 443),
    ("certificate-arn", "arn:a, arn:b", "certificate_arns", ("arn:a", "arn:b")),
    ("certificate-arn", "", "certificate_arns", None),
    ("ssl-policy", "ELBSecurityPolicy-TLS13-1-2-2021-06", "ssl_policy", "ELBSecurityPolicy-TLS13-1-2-2021-06"),
    ("ssl-policy", "", "ssl_policy", None),
    ("listener-attributes.HTTPS-443", "routing.http.response.server.enabled=false", "listener_attributes",
     (("HTTPS-443", (("routing.http.response.server.enabled", "false"),)),)),
    ("use-regex-path-match", "true", "use_regex_path_match", True),
    ("use-regex-path-match", "false", "use_regex_path_match", False),
    ("tags", "Env=dev, Team=a\\,b", "tags", (("Env", "dev"), ("Team", "a,b"))),
    ("wafv2-acl-arn", "arn:aws:wafv2:acl", "wafv2_acl_arn", "arn:aws:wafv2:acl"),
    ("wafv2-acl-arn", "none", "wafv2_acl_arn", ""),
    ("wafv2-acl-arn", "", "wafv2_acl_arn", ""),
    ("wafv2-acl-name", "my-acl", "wafv2_acl_name", "my-acl"),
    ("wafv2-acl-name", "none", "wafv2_acl_name", ""),
    ("wafv2-acl-name", "", "wafv2_acl_name", None),
    ("waf-acl-id", "web-acl-1", "waf_acl_id", "web-acl-1"),
    ("waf-acl-id", "none", "waf_acl_id", ""),
    ("web-acl-id", "legacy-1", "waf_acl_id", "legacy-1"),
    ("shield-advanced-protection", "true", "shield_advanced_protection", True),
    ("shield-advanced-protection", "0", "shield_advanced_protection", False),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "value", "field", "expected"), GOOD)
def test_annotation_values(suffix: str, value: str, field: str, expected: object) -> None:
    assert getattr(config({P + suffix: value}), field) == expected


BAD = [
    ("group.order", "1001", "value 1001 is out of range -1000-1000"),
    ("group.order", "first", "'first' is not an integer"),
    ("load-balancer-name", "a" * 33, "is longer than 32 characters"),
    ("load-balancer-name", "", "must be letters, digits and inner hyphens"),
    ("load-balancer-name", "-lb", "must be letters, digits and inner hyphens"),
    ("load-balancer-name", "my_lb", "must be letters, digits and inner hyphens"),
    ("load-balancer-name", "internal-lb", "must not start with 'internal-'"),
    ("scheme", "public", "unknown scheme 'public'; use one of internal, internet-facing"),
    ("scheme", "", "unknown scheme ''"),
    ("ip-address-type", "ipv6", "unknown IP address type 'ipv6'"),
    ("manage-backend-security-group-rules", "yes", "'yes' is not a boolean"),
    ("inbound-cidrs", "10.0.0.0/8, 10.0.0.1", "'10.0.0.1' is not a valid CIDR"),
    ("customer-owned-ipv4-pool", "", "the pool id must not be empty"),
    ("load-balancer-attributes", "a=1,b", "'b' is not a key=value pair"),
    ("minimum-load-balancer-capacity", "Capacity=1", "unknown key 'Capacity'; the only key is CapacityUnits"),
    ("minimum-load-balancer-capacity", "CapacityUnits=lots", "'lots' is not an integer"),
    ("minimum-load-balancer-capacity", "CapacityUnits=-1", "must be at least 0"),
    ("listen-ports", "[]", "the list of ports is empty"),
    ("listen-ports", '[{"HTTP": 70000}]', "port 70000 is out of range 1-65535"),
    ("listen-ports", '[{"HTTP": 0}]', "port 0 is out of range 1-65535"),
    ("listen-ports", '[{"TCP": 80}]', "unknown protocol 'TCP'; use one of HTTP, HTTPS"),
    ("listen-ports", '[{"http": 80}]', "unknown protocol 'http'"),
    ("listen-ports", '[{"HTTP": "80"}]', "port '80' of HTTP must be an integer"),
    ("listen-ports", '[{"HTTP": 80.0}]', "must be an integer"),
    ("listen-ports", '{"HTTP": 80}', "the value must be a JSON list"),
    ("listen-ports", "[HTTP:80]", "invalid JSON"),
    ("ssl-redirect", "https", "'https' is not an integer"),
    ("ssl-redirect", "0", "value 0 is out of range 1-65535"),
    ("listener-attributes.https-443", "a=b", "'https-443' must name a listener as <HTTP|HTTPS>-<port>"),
    ("listener-attributes.HTTPS-0", "a=b", "must name a listener"),
    ("listener-attributes.HTTPS-443", "a", "'a' is not a key=value pair"),
    ("actions.x", '{"type":"nope"}', "unknown action type 'nope'"),
    ("conditions.x", '[{"field":"nope"}]', "is not one of host-header"),
    ("transforms.x", '[{"type":"nope"}]', "is not one of url-rewrite"),
    ("use-regex-path-match", "regex", "'regex' is not a boolean"),
    ("tags", "=x", "has an empty key"),
    ("shield-advanced-protection", "enabled", "'enabled' is not a boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "value", "fragment"), BAD)
def test_annotation_errors(suffix: str, value: str, fragment: str) -> None:
    error = config_error({P + suffix: value})
    assert error.key == P + suffix
    assert fragment in error.message
    assert str(error).startswith(P + suffix + ": ")


def test_listen_ports_error_names_the_annotation() -> None:
    with pytest.raises(AnnotationError) as info:
        parse_listen_ports(P + "listen-ports", '[{"HTTP": 70000}]')
    assert str(info.value) == "alb.ingress.kubernetes.io/listen-ports: port 70000 is out of range 1-65535"


def test_waf_acl_id_wins_over_legacy_web_acl_id() -> None:
    assert config({P + "waf-acl-id": "new", P + "web-acl-id": "old"}).waf_acl_id == "new"
    assert (
        config({P + "waf-acl-id": "", P + "web-acl-id": "old"}).waf_acl_id is None
    )  # upstream: present wins


def test_actions_conditions_transforms_by_name() -> None:
    cfg = config({
        P + "actions.blue-green": '{"type":"forward","forwardConfig":{"targetGroups":['
                                  '{"serviceName":"blue","servicePort":80,"weight":1},'
                                  '{"serviceName":"green","servicePort":"http","weight":2}]}}',
        P + "actions.response-503": '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"503"}}',
        P + "conditions.blue-green": '[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X","values":["1"]}}]',
        P + "transforms.svc": '[{"type":"url-rewrite","urlRewriteConfig":{"rewrites":[{"regex":"a","replace":"b"}]}}]',
    })  # fmt: skip
    forward = Action(
        type="forward",
        target_groups=(
            TargetGroupTuple(target_group=Ref(literal="service:blue:80"), weight=1),
            TargetGroupTuple(target_group=Ref(literal="service:green:http"), weight=2),
        ),
    )
    fixed = Action(type="fixed-response", status_code="503")
    assert cfg.actions == (("blue-green", forward), ("response-503", fixed))
    assert cfg.action("blue-green") == forward
    assert cfg.action("missing") is None
    assert cfg.conditions_for("blue-green") == (
        Condition(field="http-header", values=("1",), header_name="X"),
    )
    assert cfg.conditions_for("other") == ()
    assert cfg.transforms_for("svc") == (Transform(type="url-rewrite", rewrites=(("a", "b"),)),)
    assert cfg.transforms_for("other") == ()


def test_listener_attributes_for() -> None:
    cfg = config({P + "listener-attributes.HTTP-80": "a=1", P + "listener-attributes.HTTPS-443": "b=2"})
    assert cfg.listener_attributes == (("HTTP-80", (("a", "1"),)), ("HTTPS-443", (("b", "2"),)))
    assert cfg.listener_attributes_for("HTTPS", 443) == (("b", "2"),)
    assert cfg.listener_attributes_for("HTTPS", 8443) == ()


def test_group_order() -> None:
    assert group_order(ingress()) == 0
    assert group_order(ingress({P + "group.order": "7"})) == 7
    with pytest.raises(AnnotationError, match="out of range -1000-1000"):
        group_order(ingress({P + "group.order": "-1001"}))
    with pytest.raises(AnnotationError, match="too large for a 32-bit integer"):
        group_order(ingress({P + "group.order": "99999999999"}))


# -- unsupported and unknown annotations --------------------------------------------------------------------
def test_unsupported_features_are_listed() -> None:
    cfg = config({
        P + "auth-type": "oidc", P + "auth-idp-oidc": "{}", P + "auth-scope": "openid",
        P + "jwt-validation": "{}", P + "mutual-authentication": "[]",
        P + "enable-frontend-nlb": "true", P + "frontend-nlb-scheme": "internal",
        P + "create-acm-cert": "true", P + "acm-pca-arn": "arn:pca",
        P + "target-control-port.svc.80": "3000",
        P + "scheme": "internal",
    })  # fmt: skip
    assert cfg.unsupported == tuple(sorted(P + s for s in (
        "auth-type", "auth-idp-oidc", "auth-scope", "jwt-validation", "mutual-authentication",
        "enable-frontend-nlb", "frontend-nlb-scheme", "create-acm-cert", "acm-pca-arn", "target-control-port.svc.80",
    )))  # fmt: skip
    assert cfg.unknown == ()


def test_switched_off_features_are_not_unsupported() -> None:
    cfg = config({
        P + "auth-type": "none", P + "enable-frontend-nlb": "false", P + "frontend-nlb-scheme": "internal",
        P + "create-acm-cert": "false", P + "acm-pca-arn": "arn:pca",
    })  # fmt: skip
    assert cfg.unsupported == ()
    assert cfg.unknown == ()


def test_unknown_keys_are_listed() -> None:
    cfg = config(
        {P + "listen-port": "80", P + "schema": "internal", "example.com/other": "x", P + "group.name": "g"}
    )
    assert cfg.unknown == (P + "listen-port", P + "schema")


# -- IngressClassParams overrides (§3.9) --------------------------------------------------------------------
def test_params_override_annotations() -> None:
    annotations = {
        P + "load-balancer-name": "from-annotation", P + "scheme": "internal", P + "ip-address-type": "ipv4",
        P + "subnets": "subnet-a", P + "inbound-cidrs": "10.0.0.0/8", P + "security-group-prefix-lists": "pl-a",
        P + "ssl-policy": "annotation-policy", P + "ssl-redirect": "8443", P + "certificate-arn": "arn:annotation",
        P + "minimum-load-balancer-capacity": "CapacityUnits=1", P + "ipam-ipv4-pool-id": "ipam-annotation",
        P + "wafv2-acl-arn": "arn:annotation-acl", P + "wafv2-acl-name": "annotation-acl",
    }  # fmt: skip
    spec = {
        "loadBalancerName": "from-params", "scheme": "internet-facing", "ipAddressType": "dualstack",
        "subnets": {"ids": ["subnet-p1", "subnet-p2"]}, "inboundCIDRs": ["192.168.0.0/16"],
        "prefixListsIDs": ["pl-p"], "sslPolicy": "params-policy", "sslRedirectPort": "443",
        "certificateArn": ["arn:params"], "minimumLoadBalancerCapacity": {"capacityUnits": 500},
        "ipamConfiguration": {"ipv4IPAMPoolId": "ipam-params"}, "wafv2AclArn": "arn:params-acl",
        "wafv2AclName": "none",
    }  # fmt: skip
    cfg = config(annotations, spec)
    assert cfg.load_balancer_name == "from-params"
    assert cfg.scheme == "internet-facing"
    assert cfg.ip_address_type == "dualstack"
    assert (cfg.subnets, cfg.subnet_tags, cfg.subnets_from_params) == (("subnet-p1", "subnet-p2"), None, True)
    assert cfg.inbound_cidrs == ("192.168.0.0/16",)
    assert cfg.security_group_prefix_lists == ("pl-p",)
    assert cfg.ssl_policy == "params-policy"
    assert cfg.ssl_redirect == 443
    assert cfg.certificate_arns == ("arn:params",)
    assert cfg.minimum_capacity_units == 500
    assert cfg.ipam_ipv4_pool_id == "ipam-params"
    assert cfg.wafv2_acl_arn == "arn:params-acl"
    assert cfg.wafv2_acl_name == ""


def test_empty_params_fields_do_not_override() -> None:
    annotations = {P + "scheme": "internal", P + "ssl-policy": "p", P + "certificate-arn": "arn:a",
                   P + "inbound-cidrs": "10.0.0.0/8", P + "load-balancer-name": "lb"}  # fmt: skip
    spec = {
        "sslPolicy": "",
        "certificateArn": [],
        "inboundCIDRs": [],
        "loadBalancerName": "",
        "sslRedirectPort": "",
    }
    cfg = config(annotations, spec)
    assert (cfg.scheme, cfg.ssl_policy, cfg.certificate_arns) == ("internal", "p", ("arn:a",))
    assert (cfg.inbound_cidrs, cfg.load_balancer_name, cfg.ssl_redirect) == (("10.0.0.0/8",), "lb", None)
    assert cfg.subnets_from_params is False


def test_params_win_so_the_annotation_is_not_even_parsed() -> None:
    cfg = config({P + "inbound-cidrs": "not-a-cidr", P + "minimum-load-balancer-capacity": "x"},
                 {"inboundCIDRs": ["10.0.0.0/8"], "minimumLoadBalancerCapacity": {"capacityUnits": 0}})  # fmt: skip
    assert (cfg.inbound_cidrs, cfg.minimum_capacity_units) == (("10.0.0.0/8",), 0)


def test_params_subnet_tags() -> None:
    cfg = config(
        {P + "subnets": "subnet-a"}, {"subnets": {"tags": {"tier": ["private", "app"], "env": ["dev"]}}}
    )
    assert cfg.subnets is None
    assert cfg.subnet_tags == (("env", ("dev",)), ("tier", ("private", "app")))
    assert cfg.subnets_from_params is True


def test_legacy_prefix_lists_field() -> None:
    assert config({}, {"PrefixListsIDs": ["pl-legacy"]}).security_group_prefix_lists == ("pl-legacy",)
    both = config({}, {"PrefixListsIDs": ["pl-legacy"], "prefixListsIDs": ["pl-new"]})
    assert both.security_group_prefix_lists == ("pl-new",)


def test_params_win_per_key_for_tags_and_attributes() -> None:
    annotations = {
        P + "tags": "Team=a, Env=dev",
        P + "load-balancer-attributes": "idle_timeout.timeout_seconds=60,routing.http2.enabled=true",
        P + "listener-attributes.HTTPS-443": "routing.http.response.server.enabled=true,x=1",
    }
    spec = {
        "tags": [{"key": "Env", "value": "prod"}, {"key": "Owner", "value": "ops"}],
        "loadBalancerAttributes": [{"key": "idle_timeout.timeout_seconds", "value": "120"}],
        "listeners": [
            {"protocol": "HTTPS", "port": 443, "listenerAttributes": [
                {"key": "routing.http.response.server.enabled", "value": "false"}]},
            {"protocol": "HTTPS", "port": 443, "listenerAttributes": [{"key": "x", "value": "ignored"}]},
            {"protocol": "HTTP", "port": 80, "listenerAttributes": [{"key": "y", "value": "2"}]},
        ],
    }  # fmt: skip
    cfg = config(annotations, spec)
    assert cfg.tags == (("Env", "prod"), ("Owner", "ops"), ("Team", "a"))
    assert cfg.load_balancer_attributes == (
        ("idle_timeout.timeout_seconds", "120"),
        ("routing.http2.enabled", "true"),
    )
    assert cfg.listener_attributes == (
        ("HTTP-80", (("y", "2"),)),
        ("HTTPS-443", (("routing.http.response.server.enabled", "false"), ("x", "1"))),
    )


PARAMS_BAD = [
    ({"scheme": "public"}, "spec.scheme 'public' is not one of internal, internet-facing"),
    ({"ipAddressType": "ipv6"}, "spec.ipAddressType 'ipv6' is not one of"),
    ({"loadBalancerName": "x" * 40}, "is longer than 32 characters"),
    ({"subnets": {}}, "spec.subnets must give exactly one of ids or tags"),
    ({"subnets": {"ids": ["subnet-1"], "tags": {"a": ["b"]}}}, "exactly one of ids or tags"),
    ({"subnets": {"ids": ["sn-1"]}}, "spec.subnets.ids must be a list of subnet IDs"),
    ({"subnets": {"tags": {"a": "b"}}}, "spec.subnets.tags must map tag keys to lists of values"),
    ({"inboundCIDRs": ["10.0.0.0/33"]}, "is not a valid spec.inboundCIDRs CIDR"),
    ({"inboundCIDRs": ["10.0.0.1/8"]}, "spec.inboundCIDRs '10.0.0.1/8' has host bits set"),
    ({"inboundCIDRs": "10.0.0.0/8"}, "spec.inboundCIDRs must be a list of strings"),
    ({"sslRedirectPort": "https"}, "spec.sslRedirectPort 'https' is not a port number"),
    ({"sslRedirectPort": "70000"}, "spec.sslRedirectPort port 70000 is out of range 1-65535"),
    ({"tags": [{"value": "x"}]}, "spec.tags must be a list of {key, value} entries"),
    ({"minimumLoadBalancerCapacity": {"capacityUnits": -1}}, "capacityUnits must be a non-negative integer"),
    ({"minimumLoadBalancerCapacity": {}}, "capacityUnits must be a non-negative integer"),
    ({"listeners": ["x"]}, "spec.listeners must be a list"),
    ({"listeners": [{"protocol": "TCP", "port": 80}]}, "entry TCP-80 needs protocol HTTP or HTTPS"),
    ({"listeners": [{"protocol": "HTTP"}]}, "entry HTTP-None needs protocol HTTP or HTTPS and a port 1-65535"),
    ({"sslPolicy": 5}, "spec.sslPolicy must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "fragment"), PARAMS_BAD)
def test_params_errors(spec: dict[str, Any], fragment: str) -> None:
    error = config_error({}, spec)
    assert error.key == "IngressClassParams class-params"
    assert fragment in error.message


# -- BackendConfig ------------------------------------------------------------------------------------------
DEFAULTS = ConfigDefaults()


def backend(
    ingress_annotations: dict[str, str] | None = None,
    service_annotations: dict[str, str] | None = None,
    *,
    spec: dict[str, Any] | None = None,
    defaults: ConfigDefaults = DEFAULTS,
    with_service: bool = True,
) -> BackendConfig:
    return backend_config(
        ingress(ingress_annotations),
        service(service_annotations) if with_service else None,
        params=params(spec) if spec is not None else None,
        defaults=defaults,
    )


def test_backend_defaults() -> None:
    assert backend() == BackendConfig(
        target_type="instance", backend_protocol="HTTP", backend_protocol_version="HTTP1",
        target_group_attributes=(), target_node_labels=(), healthcheck_port="traffic-port",
        healthcheck_protocol="HTTP", healthcheck_path="/", healthcheck_interval_seconds=15,
        healthcheck_timeout_seconds=5, healthy_threshold_count=2, unhealthy_threshold_count=2,
        success_codes="200", tags=(), multi_cluster_target_group=False,
    )  # fmt: skip
    assert backend(with_service=False) == backend()
    assert backend(defaults=ConfigDefaults(target_type="ip")).target_type == "ip"


def test_backend_grpc_defaults() -> None:
    cfg = backend({P + "backend-protocol-version": "GRPC"})
    assert (cfg.healthcheck_path, cfg.success_codes) == ("/AWS.ALB/healthcheck", "12")
    http2 = backend({P + "backend-protocol-version": "HTTP2"})
    assert (http2.healthcheck_path, http2.success_codes) == ("/", "200")


def test_backend_healthcheck_protocol_follows_backend_protocol() -> None:
    assert backend({P + "backend-protocol": "HTTPS"}).healthcheck_protocol == "HTTPS"
    cfg = backend({P + "backend-protocol": "HTTPS", P + "healthcheck-protocol": "HTTP"})
    assert (cfg.backend_protocol, cfg.healthcheck_protocol) == ("HTTPS", "HTTP")


BACKEND_GOOD = [
    ("target-type", "ip", "target_type", "ip"),
    ("target-type", "instance", "target_type", "instance"),
    ("backend-protocol", "HTTPS", "backend_protocol", "HTTPS"),
    ("backend-protocol-version", "HTTP2", "backend_protocol_version", "HTTP2"),
    ("target-group-attributes", "deregistration_delay.timeout_seconds=30", "target_group_attributes",
     (("deregistration_delay.timeout_seconds", "30"),)),
    ("target-node-labels", "pool=web, zone=a", "target_node_labels", (("pool", "web"), ("zone", "a"))),
    ("healthcheck-port", "8080", "healthcheck_port", "8080"),
    ("healthcheck-port", "08080", "healthcheck_port", "8080"),
    ("healthcheck-port", "http-health", "healthcheck_port", "http-health"),
    ("healthcheck-port", "traffic-port", "healthcheck_port", "traffic-port"),
    ("healthcheck-protocol", "HTTPS", "healthcheck_protocol", "HTTPS"),
    ("healthcheck-path", "/healthz", "healthcheck_path", "/healthz"),
    ("healthcheck-interval-seconds", "30", "healthcheck_interval_seconds", 30),
    ("healthcheck-timeout-seconds", "10", "healthcheck_timeout_seconds", 10),
    ("healthy-threshold-count", "3", "healthy_threshold_count", 3),
    ("unhealthy-threshold-count", "4", "unhealthy_threshold_count", 4),
    ("success-codes", "200-399", "success_codes", "200-399"),
    ("tags", "a=1", "tags", (("a", "1"),)),
    ("multi-cluster-target-group", "true", "multi_cluster_target_group", True),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "value", "field", "expected"), BACKEND_GOOD)
def test_backend_values_from_ingress_or_service(
    suffix: str, value: str, field: str, expected: object
) -> None:
    assert getattr(backend({P + suffix: value}), field) == expected
    assert getattr(backend(service_annotations={P + suffix: value}), field) == expected
    assert getattr(backend({P + suffix: value}, with_service=False), field) == expected


BACKEND_BAD = [
    ("target-type", "pod", "unknown target type 'pod'; use one of instance, ip"),
    ("backend-protocol", "TCP", "unknown backend protocol 'TCP'; use one of HTTP, HTTPS"),
    ("backend-protocol-version", "HTTP3", "unknown backend protocol version 'HTTP3'"),
    ("target-group-attributes", "a", "'a' is not a key=value pair"),
    ("target-node-labels", "=a", "has an empty key"),
    ("healthcheck-port", "70000", "value 70000 is out of range 1-65535"),
    ("healthcheck-port", "", "use traffic-port, a port number or a named Service port"),
    ("healthcheck-protocol", "TCP", "unknown health check protocol 'TCP'"),
    ("healthcheck-path", "healthz", "path 'healthz' must start with /"),
    ("healthcheck-interval-seconds", "0", "value 0 must be at least 1"),
    ("healthcheck-timeout-seconds", "-5", "value -5 must be at least 1"),
    ("healthy-threshold-count", "two", "'two' is not an integer"),
    ("unhealthy-threshold-count", "1.5", "'1.5' is not an integer"),
    ("success-codes", "2xx", "'2xx' is not a list of HTTP codes"),
    ("multi-cluster-target-group", "maybe", "'maybe' is not a boolean"),
    ("tags", "x", "'x' is not a key=value pair"),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "value", "fragment"), BACKEND_BAD)
def test_backend_errors(suffix: str, value: str, fragment: str) -> None:
    with pytest.raises(AnnotationError) as on_ingress:
        backend({P + suffix: value})
    assert on_ingress.value.key == P + suffix
    assert fragment in on_ingress.value.message
    with pytest.raises(AnnotationError) as on_service:
        backend(service_annotations={P + suffix: value})
    assert fragment in on_service.value.message
    if suffix != "tags":  # tags of both objects are merged per key, so the message has no origin
        assert on_service.value.message.endswith("(set on Service default/svc)")


def test_grpc_success_codes_are_checked_as_grpc() -> None:
    assert (
        backend({P + "backend-protocol-version": "GRPC", P + "success-codes": "0-99"}).success_codes == "0-99"
    )
    with pytest.raises(AnnotationError, match="gRPC code 200 is out of range 0-99"):
        backend({P + "backend-protocol-version": "GRPC", P + "success-codes": "200"})


def test_service_wins_over_ingress() -> None:
    cfg = backend(
        {P + "target-type": "instance", P + "healthcheck-path": "/ingress", P + "success-codes": "200",
         P + "target-group-attributes": "a=1,b=2", P + "healthcheck-interval-seconds": "20"},
        {P + "target-type": "ip", P + "healthcheck-path": "/service", P + "target-group-attributes": "b=3"},
    )  # fmt: skip
    assert cfg.target_type == "ip"
    assert cfg.healthcheck_path == "/service"
    assert cfg.success_codes == "200"  # only the Ingress says it
    assert cfg.healthcheck_interval_seconds == 20
    assert cfg.target_group_attributes == (("b", "3"),)  # the whole value wins, not per key


def test_service_value_hides_an_invalid_ingress_value() -> None:
    cfg = backend({P + "healthcheck-path": "no-slash"}, {P + "healthcheck-path": "/ok"})
    assert cfg.healthcheck_path == "/ok"


def test_target_type_params_win_over_service_and_ingress() -> None:
    spec = {"targetType": "ip"}
    assert (
        backend({P + "target-type": "instance"}, {P + "target-type": "instance"}, spec=spec).target_type
        == "ip"
    )
    assert backend(spec={"targetType": ""}).target_type == "instance"
    with pytest.raises(AnnotationError, match=r"spec\.targetType 'pod' is not one of instance, ip"):
        backend(spec={"targetType": "pod"})


def test_ip_target_type_needs_the_feature_gate() -> None:
    no_ip = ConfigDefaults(enable_ip_target_type=False)
    assert backend(defaults=no_ip).target_type == "instance"
    with pytest.raises(AnnotationError, match="needs the feature gate EnableIPTargetType"):
        backend({P + "target-type": "ip"}, defaults=no_ip)


def test_backend_tags_precedence() -> None:
    cfg = backend(
        {P + "tags": "a=ingress,b=ingress,c=ingress"},
        {P + "tags": "b=service,c=service"},
        spec={"tags": [{"key": "c", "value": "params"}]},
    )
    assert cfg.tags == (("a", "ingress"), ("b", "service"), ("c", "params"))


def test_multi_cluster_true_on_either_object_wins() -> None:
    flag = P + "multi-cluster-target-group"
    assert backend({flag: "true"}, {flag: "false"}).multi_cluster_target_group is True
    assert backend({flag: "false"}, {flag: "true"}).multi_cluster_target_group is True
    assert backend({flag: "false"}, {flag: "false"}).multi_cluster_target_group is False
    with pytest.raises(AnnotationError, match="'x' is not a boolean"):
        backend({flag: "x"}, {flag: "true"})  # each object's value is parsed on its own


def test_backend_unsupported_service_annotations() -> None:
    cfg = backend(
        {P + "auth-type": "cognito"},
        {P + "auth-type": "oidc", P + "target-control-port.svc.80": "3000", P + "auth-scope": "email"},
    )
    assert cfg.unsupported == (P + "auth-scope", P + "auth-type", P + "target-control-port.svc.80")
    assert backend(service_annotations={P + "auth-type": "none"}).unsupported == ()


def test_every_supported_annotation_is_known() -> None:
    keys = {P + suffix for suffix, *_ in GOOD + BACKEND_GOOD} | {P + "group.name", P + "dry-run-plan"}
    keys |= {P + "actions.a", P + "conditions.a", P + "transforms.a", P + "listener-attributes.HTTP-80"}
    assert (
        unknown_annotations(dict.fromkeys(keys, "x")) == ()
    )  # the listing itself: the values do not matter here
