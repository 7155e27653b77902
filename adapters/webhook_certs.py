"""The webhook server's certificates: use the given pair in `--webhook-cert-dir`, or generate and keep one.

Why it exists: the API server calls webhooks over HTTPS verified against a `caBundle`; with no chart (the
sandbox, a laptop) nobody hands the controller a certificate, so it makes its own.

What it owns: `ensure_serving_certificate` uses `tls.crt`/`tls.key` (names from --webhook-cert-file/-key-file)
when present; otherwise it generates a CA (`ca.crt`; its key is never written) and a serving certificate signed
by it (SANs 127.0.0.1, localhost, the configured Service's DNS names) into the directory. A restart reuses the
files; a certificate we generated is replaced when close to expiry or missing a hostname; given ones
(cert-manager's secret with its own ca.crt) are never touched. Writes are atomic and serialised by a lock file.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import ipaddress
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from loguru import logger

CA_FILE = "ca.crt"
CA_COMMON_NAME = "lbc webhook CA"  # marks the certificates we generated (and may therefore replace)
CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
DEFAULT_HOSTNAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class ServingCertificate:
    """Where the server's certificate and key are, and the PEM CA bundle clients should trust."""

    cert_file: Path
    key_file: Path
    ca_pem: bytes
    generated: bool

    @property
    def ca_bundle(self) -> str:
        """The CA as a webhook `caBundle` (base64 of the PEM)."""
        return base64.b64encode(self.ca_pem).decode("ascii")


def service_hostnames(namespace: str, name: str) -> tuple[str, ...]:
    """The DNS names the API server uses for a webhook Service."""
    return (f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")


def ensure_serving_certificate(
    cert_dir: str | Path,
    *,
    cert_file: str = "tls.crt",
    key_file: str = "tls.key",
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
) -> ServingCertificate:
    """The serving certificate of `cert_dir`, generated (with a CA) when missing or a generated one expires."""
    folder = Path(cert_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, ca_path = folder / cert_file, folder / key_file, folder / CA_FILE
    log = logger.bind(cert_dir=str(folder))
    with _locked(folder / ".lbc-cert.lock"):
        if cert_path.exists() and key_path.exists():
            cert_pem = cert_path.read_bytes()
            ca_pem = ca_path.read_bytes() if ca_path.exists() else cert_pem
            if not (_generated_by_us(cert_pem) and _expiring(cert_pem, hostnames)):
                log.bind(cert_file=str(cert_path)).info("webhook certificate reused")
                return ServingCertificate(cert_path, key_path, ca_pem, generated=False)
        log.bind(hostnames=list(hostnames)).info("webhook certificate generating")
        ca_key, ca_cert = _make_ca()
        key_pem, cert_pem = _make_serving(ca_key, ca_cert, hostnames)
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        _write_atomic(ca_path, ca_pem, mode=0o644)
        _write_atomic(key_path, key_pem, mode=0o600)
        _write_atomic(cert_path, cert_pem, mode=0o644)
        log.bind(cert_file=str(cert_path)).info("webhook certificate generated")
        return ServingCertificate(cert_path, key_path, ca_pem, generated=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generated_by_us(cert_pem: bytes) -> bool:
    """Whether we made this certificate (so we may replace it); given ones (cert-manager's) are never touched."""
    try:
        issuer = x509.load_pem_x509_certificate(cert_pem).issuer
    except ValueError:
        return False
    names = issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(names) and names[0].value == CA_COMMON_NAME


def _expiring(cert_pem: bytes, hostnames: Sequence[str]) -> bool:
    """Whether a generated certificate must be replaced: unreadable, near its end, or missing a hostname."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    covered = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    covered.update(sans.get_values_for_type(x509.DNSName))
    now = datetime.datetime.now(datetime.UTC)
    return cert.not_valid_after_utc - now < RENEW_BEFORE or not set(hostnames) <= covered


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_serving(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hostnames: Sequence[str]
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    common_name = next((h for h in hostnames if not h[0].isdigit()), "aws-load-balancer-webhook")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVING_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)
