"""Which ACM certificates serve which hosts (lbc-features §4.3 certificate discovery), from ACM's own answers.

When a member of an IngressGroup has an HTTPS port and no explicit certificate, upstream attaches every ISSUED
ACM certificate one of whose domains matches a TLS host: equal names, or a single-label wildcard `*.x.y` that
matches a host with the same number of labels and the same suffix. The actor fetches ListCertificates /
DescribeCertificate through the gateway and hands the DescribeCertificate `Certificate` dicts here; the builder
turns a host with no certificate into upstream's `no certificate found for host: <host>` error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from model.constants import ACM_CERTIFICATE_STATUS_ISSUED

Certificate = Mapping[str, Any]


class CertificateNotFoundError(ValueError):
    """A TLS host that no usable certificate covers; str(e) is upstream's message."""

    def __init__(self, host: str) -> None:
        super().__init__(no_certificate_message(host))
        self.host = host


def no_certificate_message(host: str) -> str:
    return f"no certificate found for host: {host}"


def host_matches(domain: str, host: str) -> bool:
    """Whether a certificate domain covers `host`: equal, or `*.<suffix>` with one label in place of `*`.

    Case-insensitive (DNS names are). `*.example.com` covers `a.example.com` but neither `example.com` nor
    `a.b.example.com`.
    """
    domain, host = domain.lower(), host.lower()
    if domain.startswith("*."):
        domain_labels, host_labels = domain.split("."), host.split(".")
        return len(domain_labels) == len(host_labels) and domain_labels[1:] == host_labels[1:]
    return domain == host


def certificate_domains(certificate: Certificate) -> frozenset[str]:
    """The names a certificate covers: its SubjectAlternativeNames (ACM lists DomainName among them too)."""
    names = [str(name) for name in certificate.get("SubjectAlternativeNames") or ()]
    if certificate.get("DomainName"):
        names.append(str(certificate["DomainName"]))
    return frozenset(names)


def filter_by_authority(
    certificates: Iterable[Certificate], allowed_ca_arns: Sequence[str]
) -> tuple[Certificate, ...]:
    """Certificates issued by one of `allowed_ca_arns` (`--allowed-certificate-authority-arns`); all if empty.

    Certificates without a CertificateAuthorityArn (Amazon-issued, imported) pass only when the list is empty.
    """
    if not allowed_ca_arns:
        return tuple(certificates)
    allowed = frozenset(allowed_ca_arns)
    return tuple(c for c in certificates if c.get("CertificateAuthorityArn") in allowed)


def certificates_for_hosts(
    hosts: Iterable[str], certificates: Sequence[Certificate]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For each distinct host (first-seen order): the ARNs of every certificate matching it, sorted; () if none.

    Only ISSUED certificates count (a certificate without a Status is taken as ISSUED, as ListCertificates with
    the ISSUED filter returns them). Apply `filter_by_authority` first when CAs are restricted.
    """
    usable = [
        (str(c["CertificateArn"]), certificate_domains(c))
        for c in certificates
        if c.get("CertificateArn")
        and c.get("Status", ACM_CERTIFICATE_STATUS_ISSUED) == ACM_CERTIFICATE_STATUS_ISSUED
    ]
    result: list[tuple[str, tuple[str, ...]]] = []
    for host in dict.fromkeys(hosts):
        arns = sorted({arn for arn, domains in usable if any(host_matches(d, host) for d in domains)})
        result.append((host, tuple(arns)))
    return tuple(result)


def discovered_certificate_arns(hosts: Iterable[str], certificates: Sequence[Certificate]) -> tuple[str, ...]:
    """Upstream's Discover: the sorted union of the certificates of every host; raises for an uncovered host."""
    arns: set[str] = set()
    for host, host_arns in certificates_for_hosts(hosts, certificates):
        if not host_arns:
            raise CertificateNotFoundError(host)
        arns.update(host_arns)
    return tuple(sorted(arns))
