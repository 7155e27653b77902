"""Annotation value formats (model/annotations.py): upstream's exact parsing, and errors a user understands."""

from __future__ import annotations

import pytest

from model.annotations import (
    AnnotationError,
    parse_action,
    parse_bool,
    parse_cidr,
    parse_conditions,
    parse_int,
    parse_json,
    parse_service_ref,
    parse_string_list,
    parse_string_map,
    parse_success_codes,
    parse_transforms,
    service_ref,
    target_group_name_of,
    target_group_name_ref,
)
from model.stack import Action, Condition, Ref, TargetGroupTuple, Transform

K = "alb.ingress.kubernetes.io/x"


def error_of(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(AnnotationError) as info:
        call(*args, **kwargs)
    assert info.value.key == args[0]
    assert str(info.value) == f"{info.value.key}: {info.value.message}"
    return info.value.message


# -- stringList ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("\t,  ,,,,,", ()),
        ("abc,", ("abc",)),
        ("sg-1, sg-2", ("sg-1", "sg-2")),
        # upstream's own test vector
        (
            'ab  c, de  \t, test, ,\t\t\t123   \t\t, "ooo, 1,,,, 3',
            ("ab  c", "de", "test", "123", '"ooo', "1", "3"),
        ),
        ("a\u00a0,\u3000b", ("a", "b")),  # Go's TrimSpace trims Unicode spaces
    ],
)
def test_string_list(raw: str, expected: tuple[str, ...]) -> None:
    assert parse_string_list(K, raw) == expected


# -- stringMap ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("k=v", {"k": "v"}),
        # upstream's test vectors
        (
            "key1=value1, key2=value2, key3/with-slash=value3, key4/empty-value=",
            {"key1": "value1", "key2": "value2", "key3/with-slash": "value3", "key4/empty-value": ""},
        ),
        (
            "key1=value1\\,valueOne, key2= value2, key3/with-slash=value3\\,valueThree, key4/empty-value=",
            {
                "key1": "value1,valueOne",
                "key2": "value2",
                "key3/with-slash": "value3,valueThree",
                "key4/empty-value": "",
            },
        ),
        (
            "key1=Mjk5NzkyNDU4Cg==, foo=ZGF=0=ZQo=, res=value_:/=+-@",
            {"key1": "Mjk5NzkyNDU4Cg==", "foo": "ZGF=0=ZQo=", "res": "value_:/=+-@"},
        ),
        (" k = v , k2=v2 ", {"k": "v", "k2": "v2"}),
        ("k=a,k=b", {"k": "b"}),  # a repeated key keeps its last value
        ("k=v,", {"k": "v,"}),  # a trailing comma stays in the value (nothing follows it)
        ("k=v, ", {"k": "v,"}),
        ("k=a\\\\b", {"k": "a\\b"}),  # an escaped backslash
        ("k=a\\", {"k": "a\\"}),  # a lone trailing backslash is kept
        ("k=a\\=b", {"k": "a=b"}),
        ("k=a,,b=c", None),  # an empty pair between two commas is an error upstream too
    ],
)
def test_string_map(raw: str, expected: dict[str, str] | None) -> None:
    if expected is None:
        error_of(parse_string_map, K, raw)
    else:
        assert parse_string_map(K, raw) == tuple(sorted(expected.items()))


def test_string_map_is_sorted() -> None:
    assert parse_string_map(K, "b=1,a=2,c=3") == (("a", "2"), ("b", "1"), ("c", "3"))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("key1,key2", "'key1' is not a key=value pair"),
        ("k=v,oops", "'oops' is not a key=value pair"),
        ("=value", "'=value' has an empty key"),
        (" =value", "has an empty key"),
        ("   ", "is not a key=value pair"),
    ],
)
def test_string_map_errors(raw: str, fragment: str) -> None:
    assert fragment in error_of(parse_string_map, K, raw)


# -- bool / int ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_true(raw: str) -> None:
    assert parse_bool(K, raw) is True


@pytest.mark.parametrize("raw", ["0", "f", "F", "FALSE", "false", "False"])
def test_bool_false(raw: str) -> None:
    assert parse_bool(K, raw) is False


@pytest.mark.parametrize("raw", ["", "yes", "FaLsE", " true", "on"])
def test_bool_errors(raw: str) -> None:
    assert "is not a boolean" in error_of(parse_bool, K, raw)


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("+7", 7), ("-12", -12), ("0012", 12)])
def test_int(raw: str, expected: int) -> None:
    assert parse_int(K, raw) == expected


@pytest.mark.parametrize("raw", ["", " 1", "1 ", "1.0", "1e3", "0x10", "1_000", "٣", "ten"])
def test_int_syntax_errors(raw: str) -> None:
    assert "is not an integer" in error_of(parse_int, K, raw)


def test_int_bits_and_range() -> None:
    assert parse_int(K, "2147483647", bits=32) == 2**31 - 1
    assert "too large for a 32-bit integer" in error_of(parse_int, K, "2147483648", bits=32)
    assert "too large for a 64-bit integer" in error_of(parse_int, K, "9223372036854775808")
    assert error_of(parse_int, K, "70000", minimum=1, maximum=65535) == "value 70000 is out of range 1-65535"
    assert error_of(parse_int, K, "0", minimum=1) == "value 0 must be at least 1"
    assert error_of(parse_int, K, "9", maximum=8) == "value 9 must be at most 8"


# -- json / cidr / success codes ----------------------------------------------------------------------------
def test_json() -> None:
    assert parse_json(K, '[{"HTTP": 80}]') == [{"HTTP": 80}]
    assert "invalid JSON" in error_of(parse_json, K, '[{"HTTP": 80}')
    assert "line 1 column" in error_of(parse_json, K, "{nope}")
    assert "NaN is not allowed" in error_of(parse_json, K, "[NaN]")


@pytest.mark.parametrize("raw", ["10.0.0.0/8", "10.1.2.3/24", "0.0.0.0/0", "2001:db8::/32", "::/0"])
def test_cidr(raw: str) -> None:
    assert parse_cidr(K, raw) == raw


@pytest.mark.parametrize(
    "raw", ["10.0.0.1", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/x", "010.0.0.0/8", "a/8", "::/129"]
)
def test_cidr_errors(raw: str) -> None:
    assert "is not a valid CIDR" in error_of(parse_cidr, K, raw)


@pytest.mark.parametrize("raw", ["200", "200,404", "200-299", "200-299,404", "499"])
def test_success_codes_http(raw: str) -> None:
    assert parse_success_codes(K, raw, grpc=False) == raw


@pytest.mark.parametrize("raw", ["0", "12", "0-99", "0,4,12"])
def test_success_codes_grpc(raw: str) -> None:
    assert parse_success_codes(K, raw, grpc=True) == raw


@pytest.mark.parametrize(
    ("raw", "grpc", "fragment"),
    [
        ("", False, "is not a list of HTTP codes"),
        ("200,", False, "is not a list of HTTP codes"),
        ("200 - 299", False, "is not a list"),
        ("ok", False, "is not a list"),
        ("199", False, "HTTP code 199 is out of range 200-499"),
        ("200-500", False, "HTTP code 500 is out of range 200-499"),
        ("299-200", False, "range 299-200 ends before it starts"),
        ("100", True, "gRPC code 100 is out of range 0-99"),
    ],
)
def test_success_codes_errors(raw: str, grpc: bool, fragment: str) -> None:
    assert fragment in error_of(parse_success_codes, K, raw, grpc=grpc)


# -- actions ------------------------------------------------------------------------------------------------
def test_action_fixed_response() -> None:
    raw = '{"type":"fixed-response","fixedResponseConfig":{"contentType":"text/plain","statusCode":"503","messageBody":"down"}}'
    assert parse_action(K, raw) == Action(
        type="fixed-response", status_code="503", content_type="text/plain", message_body="down"
    )
    assert parse_action(K, '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"404"}}') == Action(
        type="fixed-response", status_code="404"
    )


def test_action_redirect() -> None:
    raw = (
        '{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","Host":"h","Path":"/p",'
        '"Query":"q=1","StatusCode":"HTTP_301"}}'
    )  # Go matches JSON names case-insensitively
    assert parse_action(K, raw) == Action(
        type="redirect", status_code="HTTP_301", redirect_protocol="HTTPS", redirect_port="443",
        redirect_host="h", redirect_path="/p", redirect_query="q=1",
    )  # fmt: skip
    assert parse_action(K, '{"type":"redirect","redirectConfig":{"statusCode":"HTTP_302"}}') == Action(
        type="redirect", status_code="HTTP_302"
    )


def test_action_forward_simplified() -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"
    expected = Action(type="forward", target_groups=(TargetGroupTuple(target_group=Ref(literal=arn)),))
    assert parse_action(K, f'{{"type":"forward","targetGroupARN":"{arn}"}}') == expected
    by_name = parse_action(K, '{"type":"forward","targetGroupName":"blue"}')
    assert by_name.target_groups == (TargetGroupTuple(target_group=target_group_name_ref("blue")),)
    assert target_group_name_of(by_name.target_groups[0].target_group) == "blue"
    both = parse_action(K, f'{{"type":"forward","targetGroupARN":"{arn}","targetGroupName":"blue"}}')
    assert both == expected  # upstream: the ARN wins


def test_action_forward_advanced() -> None:
    raw = """{"type":"forward","forwardConfig":{"targetGroups":[
        {"serviceName":"svc-a","servicePort":"80","weight":20},
        {"serviceName":"svc-b","servicePort":"http","weight":30},
        {"targetGroupARN":"arn:tg","weight":50},
        {"targetGroupName":"named","weight":0}],
        "targetGroupStickinessConfig":{"enabled":true,"durationSeconds":200}}}"""
    action = parse_action(K, raw)
    assert action == Action(
        type="forward",
        target_groups=(
            TargetGroupTuple(target_group=Ref(literal="service:svc-a:80"), weight=20),
            TargetGroupTuple(target_group=Ref(literal="service:svc-b:http"), weight=30),
            TargetGroupTuple(target_group=Ref(literal="arn:tg"), weight=50),
            TargetGroupTuple(target_group=Ref(literal="targetGroupName:named"), weight=0),
        ),
        stickiness_enabled=True,
        stickiness_duration_seconds=200,
    )
    assert parse_service_ref(action.target_groups[0].target_group) == ("svc-a", 80)  # "80" normalised to 80
    assert parse_service_ref(action.target_groups[1].target_group) == ("svc-b", "http")
    assert parse_service_ref(action.target_groups[2].target_group) is None
    single = parse_action(
        K, '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"s","servicePort":8080}]}}'
    )
    assert single.target_groups == (TargetGroupTuple(target_group=service_ref("s", 8080)),)
    assert single.stickiness_enabled is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("[]", "the value must be a JSON object"),
        ("{", "invalid JSON"),
        ("{}", "unknown action type ''; use one of fixed-response, redirect, forward"),
        ('{"type":"authenticate-oidc"}', "unknown action type 'authenticate-oidc'"),
        ('{"type":"fixed-response"}', "fixedResponseConfig is required for a fixed-response action"),
        ('{"type":"fixed-response","fixedResponseConfig":{}}', "fixedResponseConfig.statusCode is required"),
        ('{"type":"fixed-response","fixedResponseConfig":{"statusCode":404}}', "statusCode must be a string"),
        (
            '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"301"}}',
            "must be a 2XX, 4XX or 5XX code",
        ),
        ('{"type":"redirect"}', "redirectConfig is required for a redirect action"),
        ('{"type":"redirect","redirectConfig":{"statusCode":"301"}}', "must be HTTP_301 or HTTP_302"),
        (
            '{"type":"redirect","redirectConfig":{"statusCode":"HTTP_301","port":443}}',
            "redirectConfig.port must be a string",
        ),
        ('{"type":"forward"}', "a forward action needs forwardConfig, targetGroupARN or targetGroupName"),
        (
            '{"type":"forward","targetGroupARN":"a","forwardConfig":{}}',
            "either forwardConfig or targetGroupARN",
        ),
        ('{"type":"forward","forwardConfig":{"targetGroups":[]}}', "must list at least one target group"),
        ('{"type":"forward","forwardConfig":{"targetGroups":[{}]}}', "targetGroups[0] needs serviceName"),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"s","servicePort":80,"targetGroupARN":"a"}]}}',
            "gives both serviceName and targetGroupARN",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"s"}]}}',
            "servicePort is required",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"s","servicePort":true}]}}',
            "servicePort must be a port number or a port name",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"targetGroupARN":"a"},{"targetGroupARN":"b","weight":1}]}}',
            "targetGroups[0].weight is required when forwarding to several target groups",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"targetGroupARN":"a","weight":1000}]}}',
            "targetGroups[0].weight 1000 is out of range 0-999",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"targetGroupARN":"a","weight":1.5}]}}',
            "weight must be an integer",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"targetGroupARN":"a"}],'
            '"targetGroupStickinessConfig":{"enabled":"yes"}}}',
            "targetGroupStickinessConfig.enabled must be true or false",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":[{"targetGroupARN":"a"}],'
            '"targetGroupStickinessConfig":{"durationSeconds":0}}}',
            "durationSeconds 0 is out of range 1-604800",
        ),
        (
            '{"type":"forward","forwardConfig":{"targetGroups":{}}}',
            "forwardConfig.targetGroups must be a list",
        ),
    ],
)
def test_action_errors(raw: str, fragment: str) -> None:
    assert fragment in error_of(parse_action, K, raw)


def test_action_null_fields_are_absent() -> None:
    raw = '{"type":"forward","targetGroupARN":null,"targetGroupName":null,"forwardConfig":{"targetGroups":[{"targetGroupARN":"a","weight":null}]}}'
    assert parse_action(K, raw).target_groups == (TargetGroupTuple(target_group=Ref(literal="a")),)


# -- conditions ---------------------------------------------------------------------------------------------
def test_conditions_all_fields() -> None:
    raw = """[
      {"field":"host-header","hostHeaderConfig":{"values":["a.example.com","*.b.example.com"]}},
      {"field":"host-header","hostHeaderConfig":{"regexValues":["^x.*$"]}},
      {"field":"path-pattern","pathPatternConfig":{"values":["/api/*"]}},
      {"field":"path-pattern","pathPatternConfig":{"regexValues":["^/v[0-9]+/"]}},
      {"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Env","values":["dev"]}},
      {"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Re","regexValues":["a+"]}},
      {"field":"http-request-method","httpRequestMethodConfig":{"Values":["GET","HEAD"]}},
      {"field":"query-string","queryStringConfig":{"values":[{"key":"v","value":"1"},{"value":"flag"}]}},
      {"field":"source-ip","sourceIPConfig":{"values":["10.0.0.0/8","2001:db8::/32"]}}
    ]"""
    assert parse_conditions(K, raw) == (
        Condition(field="host-header", values=("a.example.com", "*.b.example.com")),
        Condition(field="host-header", regex_values=("^x.*$",)),
        Condition(field="path-pattern", values=("/api/*",)),
        Condition(field="path-pattern", regex_values=("^/v[0-9]+/",)),
        Condition(field="http-header", values=("dev",), header_name="X-Env"),
        Condition(field="http-header", regex_values=("a+",), header_name="X-Re"),
        Condition(field="http-request-method", values=("GET", "HEAD")),
        Condition(field="query-string", query=(("v", "1"), ("", "flag"))),
        Condition(field="source-ip", values=("10.0.0.0/8", "2001:db8::/32")),
    )


def test_conditions_empty_and_null() -> None:
    assert parse_conditions(K, "[]") == ()
    assert parse_conditions(K, "null") == ()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{}", "the value must be a JSON list"),
        ("[1]", "[0] must be a JSON object"),
        ('[{"field":"cookie"}]', "[0].field 'cookie' is not one of host-header, path-pattern"),
        ('[{"field":"host-header"}]', "[0].hostHeaderConfig is required for field host-header"),
        ('[{"field":"host-header","hostHeaderConfig":{}}]', "needs non-empty values or regexValues"),
        (
            '[{"field":"host-header","hostHeaderConfig":{"values":["a"],"regexValues":["b"]}}]',
            "gives both values and regexValues",
        ),
        (
            '[{"field":"path-pattern","pathPatternConfig":{"values":"/x"}}]',
            "values must be a list of strings",
        ),
        (
            '[{"field":"http-header","httpHeaderConfig":{"values":["a"]}}]',
            "httpHeaderConfig.httpHeaderName is required",
        ),
        (
            '[{"field":"http-request-method","httpRequestMethodConfig":{"values":[]}}]',
            "needs non-empty values",
        ),
        (
            '[{"field":"http-request-method","httpRequestMethodConfig":{"regexValues":["G.*"]}}]',
            "regexValues is only allowed for host-header, path-pattern and http-header",
        ),
        (
            '[{"field":"query-string","queryStringConfig":{"values":[]}}]',
            "queryStringConfig.values must not be empty",
        ),
        (
            '[{"field":"query-string","queryStringConfig":{"values":[{"key":"k"}]}}]',
            "values[0].value must not be empty",
        ),
        (
            '[{"field":"source-ip","sourceIPConfig":{"values":["10.0.0.1"]}}]',
            "'10.0.0.1' is not a valid source-ip CIDR",
        ),
        ('[{"field":"source-ip","sourceIPConfig":{}}]', "sourceIPConfig needs non-empty values"),
    ],
)
def test_condition_errors(raw: str, fragment: str) -> None:
    assert fragment in error_of(parse_conditions, K, raw)


# -- transforms ---------------------------------------------------------------------------------------------
def test_transforms() -> None:
    raw = """[
      {"type":"url-rewrite","urlRewriteConfig":{"rewrites":[{"regex":"^/api/(.*)$","replace":"/$1"}]}},
      {"type":"host-header-rewrite","hostHeaderRewriteConfig":{"rewrites":[{"regex":"^a$","replace":"b"}]}}
    ]"""
    assert parse_transforms(K, raw) == (
        Transform(type="url-rewrite", rewrites=(("^/api/(.*)$", "/$1"),)),
        Transform(type="host-header-rewrite", rewrites=(("^a$", "b"),)),
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (
            '[{"type":"path-rewrite"}]',
            "[0].type 'path-rewrite' is not one of url-rewrite, host-header-rewrite",
        ),
        ('[{"type":"url-rewrite"}]', "[0].urlRewriteConfig is required for type url-rewrite"),
        (
            '[{"type":"url-rewrite","hostHeaderRewriteConfig":{"rewrites":[{}]}}]',
            "urlRewriteConfig is required",
        ),
        (
            '[{"type":"host-header-rewrite","hostHeaderRewriteConfig":{"rewrites":[]}}]',
            "rewrites must not be empty",
        ),
        (
            '[{"type":"url-rewrite","urlRewriteConfig":{"rewrites":[{"regex":1}]}}]',
            "rewrites[0].regex must be a string",
        ),
    ],
)
def test_transform_errors(raw: str, fragment: str) -> None:
    assert fragment in error_of(parse_transforms, K, raw)


def test_error_string_names_the_annotation() -> None:
    with pytest.raises(AnnotationError) as info:
        parse_int("alb.ingress.kubernetes.io/listen-ports", "x")
    assert str(info.value) == "alb.ingress.kubernetes.io/listen-ports: 'x' is not an integer"
    assert isinstance(info.value, ValueError)
