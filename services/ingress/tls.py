"""The STARTTLS context: the configured certificate, or a self-signed one for development."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from baton.settings import Settings
from services.ingress.errors import TLSConfigError

DEV_CERT = "ingress-cert.pem"
DEV_KEY = "ingress-key.pem"
_DEV_VALIDITY = datetime.timedelta(days=3650)


def server_context(settings: Settings) -> ssl.SSLContext:
    """A server-side context for STARTTLS from the settings' certificate or the development one."""
    if bool(settings.smtp_tls_cert) != bool(settings.smtp_tls_key):
        raise TLSConfigError("BATON_SMTP_TLS_CERT and BATON_SMTP_TLS_KEY must be given together")
    if settings.smtp_tls_cert:
        cert, key = Path(settings.smtp_tls_cert), Path(settings.smtp_tls_key)
    else:
        cert, key = ensure_dev_certificate(Path(settings.smtp_dev_tls_dir), settings.smtp_hostname)
    # CLIENT_AUTH purpose: no client certificate is asked for and no hostname is checked, which is
    # what an SMTP server wants (aiosmtpd warns otherwise).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load certificate {cert} / key {key}: {exc}") from exc
    return context


def ensure_dev_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """Certificate and key paths in ``directory``, creating a self-signed pair the first time.

    Reused across restarts so clients that pinned it keep working; written to temporary names and
    renamed so that replicas starting together never read half a file.
    """
    cert_path, key_path = directory / DEV_CERT, directory / DEV_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _DEV_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
