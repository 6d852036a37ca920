"""The certificate Traefik serves: the lab's own (secret/tls/tls.crt + tls.key), or, when there is
none, one issued by a local LabHub CA (secret/labhub-ca.crt, which users can trust once)."""

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .settings import SettingError

CA_NAME = "LabHub local CA"
LEAF_DAYS = 365
RENEW_DAYS = 30  # a self-made certificate this close to expiry is renewed at start


class TlsFiles:
    def __init__(self, secret_dir: Path):
        self.secret_dir = secret_dir
        self.cert = secret_dir / "tls" / "tls.crt"
        self.key = secret_dir / "tls" / "tls.key"
        self.ca_cert = secret_dir / "labhub-ca.crt"
        self.ca_key = secret_dir / "labhub-ca.key"

    def shown(self, path: Path) -> str:
        """The path as the admin sees it, relative to the repo."""
        return "secret/" + str(path.relative_to(self.secret_dir))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)  # atomic, so Traefik's file watcher never sees half a file


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _read_cert(files: TlsFiles, path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError):
        raise SettingError(f"{files.shown(path)}: cannot read a PEM certificate; "
                           "replace it with the PEM file (BEGIN CERTIFICATE) or remove it") from None


def _read_key(files: TlsFiles, path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise SettingError(f"{files.shown(path)}: cannot read an unencrypted PEM private key; "
                           "replace it with the key file (BEGIN PRIVATE KEY)") from None


def _ensure_ca(files: TlsFiles):
    if files.ca_cert.exists() and files.ca_key.exists():
        return _read_cert(files, files.ca_cert), _read_key(files, files.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(files.ca_key, _pem_key(key), 0o600)
    _write(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _issue(files: TlsFiles, hostname: str) -> None:
    ca_cert, ca_key = _ensure_ca(files)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for n in dict.fromkeys([hostname, "localhost"])]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.key, _pem_key(key), 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _is_self_made(files: TlsFiles, cert: x509.Certificate) -> bool:
    return files.ca_cert.exists() and cert.issuer == _read_cert(files, files.ca_cert).subject


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        return []


def ensure_certificate(secret_dir: Path, hostname: str) -> str:
    """Makes sure secret/tls holds a usable certificate and key; returns what it did, for the log."""
    files = TlsFiles(secret_dir)
    have_cert, have_key = files.cert.exists(), files.key.exists()
    if have_cert != have_key:
        present, missing = (files.cert, files.key) if have_cert else (files.key, files.cert)
        raise SettingError(f"{files.shown(missing)}: missing while {files.shown(present)} is there; "
                           f"add it, or remove {files.shown(present)} to use a self-made certificate")
    if not have_cert:
        _issue(files, hostname)
        return f"made a certificate for {hostname} signed by {files.shown(files.ca_cert)}"

    cert, key = _read_cert(files, files.cert), _read_key(files, files.key)
    if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise SettingError(f"{files.shown(files.key)}: does not match {files.shown(files.cert)}; "
                           "put the private key that belongs to this certificate there")
    if _is_self_made(files, cert):
        left = cert.not_valid_after_utc - _now()
        if left < datetime.timedelta(days=RENEW_DAYS) or hostname not in _dns_names(cert):
            _issue(files, hostname)
            return f"renewed the self-made certificate for {hostname}"
        return f"self-made certificate for {hostname} valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    return f"lab certificate for {', '.join(_dns_names(cert)) or cert.subject.rfc4514_string()} valid until {cert.not_valid_after_utc:%Y-%m-%d}"
