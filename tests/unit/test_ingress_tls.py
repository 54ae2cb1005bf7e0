import ssl
from pathlib import Path

import pytest

from baton.settings import Settings
from services.ingress.errors import TLSConfigError
from services.ingress.tls import ensure_dev_certificate, server_context


def test_dev_certificate_is_created_once_and_reused(tmp_path: Path) -> None:
    cert, key = ensure_dev_certificate(tmp_path / "tls", "mx.test")
    first = cert.read_bytes()
    assert key.stat().st_mode & 0o077 == 0
    again, _ = ensure_dev_certificate(tmp_path / "tls", "mx.test")
    assert again.read_bytes() == first


def test_server_context_from_settings(tmp_path: Path) -> None:
    context = server_context(Settings(smtp_dev_tls_dir=str(tmp_path / "tls")))
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    cert, key = tmp_path / "tls" / "ingress-cert.pem", tmp_path / "tls" / "ingress-key.pem"
    # An explicitly configured pair is used as is.
    assert server_context(Settings(smtp_tls_cert=str(cert), smtp_tls_key=str(key)))
    with pytest.raises(TLSConfigError, match="together"):
        server_context(Settings(smtp_tls_cert=str(cert)))
    with pytest.raises(TLSConfigError, match="cannot load"):
        server_context(Settings(smtp_tls_cert=str(cert), smtp_tls_key=str(tmp_path / "missing.pem")))
