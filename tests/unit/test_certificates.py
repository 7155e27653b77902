"""ACM certificate matching by host (lbc-features §4.3)."""

from __future__ import annotations

from typing import Any

import pytest

from model.certificates import (
    CertificateNotFoundError,
    certificate_domains,
    certificates_for_hosts,
    discovered_certificate_arns,
    filter_by_authority,
    host_matches,
)

ARN = "arn:aws:acm:us-east-1:123456789012:certificate/"


def cert(name: str, *domains: str, status: str = "ISSUED", ca: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "CertificateArn": ARN + name,
        "DomainName": domains[0],
        "SubjectAlternativeNames": list(domains),
        "Status": status,
    }
    if ca is not None:
        item["CertificateAuthorityArn"] = ca
    return item


@pytest.mark.parametrize(
    ("domain", "host", "expected"),
    [
        ("app.example.org", "app.example.org", True),
        ("app.example.org", "APP.Example.org", True),
        ("app.example.org", "api.example.org", False),
        ("*.example.com", "a.example.com", True),
        ("*.Example.COM", "A.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "a.example.org", False),
        ("*.example.com", "*.example.com", True),
        ("example.com", "a.example.com", False),
        ("a.*.example.com", "a.b.example.com", False),
    ],
)
def test_host_matches(domain: str, host: str, expected: bool) -> None:
    assert host_matches(domain, host) is expected


def test_every_matching_certificate_sorted_by_arn() -> None:
    certificates = [
        cert("c", "*.example.com"),
        cert("a", "www.example.com", "api.example.com"),
        cert("b", "app.example.org"),
    ]
    result = certificates_for_hosts(["api.example.com", "app.example.org", "nothing.test"], certificates)
    assert result == (
        ("api.example.com", (ARN + "a", ARN + "c")),
        ("app.example.org", (ARN + "b",)),
        ("nothing.test", ()),
    )


def test_hosts_are_deduplicated_in_first_seen_order() -> None:
    certificates = [cert("a", "a.test")]
    assert certificates_for_hosts(["b.test", "a.test", "b.test"], certificates) == (
        ("b.test", ()),
        ("a.test", (ARN + "a",)),
    )


def test_only_issued_certificates_count() -> None:
    certificates = [cert("a", "a.test", status="PENDING_VALIDATION"), cert("b", "a.test", status="EXPIRED")]
    untagged = {"CertificateArn": ARN + "c", "SubjectAlternativeNames": ["a.test"]}  # no Status: ISSUED
    assert certificates_for_hosts(["a.test"], [*certificates, untagged]) == (("a.test", (ARN + "c",)),)


def test_domain_name_and_sans_both_count() -> None:
    only_domain = {"CertificateArn": ARN + "a", "DomainName": "x.test"}
    assert certificate_domains(only_domain) == frozenset({"x.test"})
    assert certificate_domains(cert("b", "y.test", "z.test")) == frozenset({"y.test", "z.test"})


def test_filter_by_authority() -> None:
    private = cert("a", "a.test", ca="arn:aws:acm-pca:ca/1")
    other = cert("b", "a.test", ca="arn:aws:acm-pca:ca/2")
    amazon = cert("c", "a.test")
    assert filter_by_authority([private, other, amazon], []) == (private, other, amazon)
    assert filter_by_authority([private, other, amazon], ["arn:aws:acm-pca:ca/1"]) == (private,)


def test_discovered_certificate_arns_is_the_union_or_upstreams_error() -> None:
    certificates = [cert("b", "*.example.com"), cert("a", "app.example.org")]
    assert discovered_certificate_arns(["x.example.com", "app.example.org"], certificates) == (
        ARN + "a",
        ARN + "b",
    )
    with pytest.raises(CertificateNotFoundError, match=r"^no certificate found for host: y\.test$"):
        discovered_certificate_arns(["x.example.com", "y.test"], certificates)
