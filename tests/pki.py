"""Certificates as a lab gets them from its CA (root, intermediate, leaf), for tests of what
LabHub serves and refuses."""

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _general_name(name: str) -> x509.GeneralName:
    """A host name, or an address (a test peer reached by its IP)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _cert(subject: str, key, issuer=None, issuer_key=None, days=(-1, 3650), names=(), ca=True) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass
class LabCertificate:
    leaf: x509.Certificate
    intermediate: x509.Certificate
    root: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> bytes:
        return pem(self.root)

    def chain_pem(self, order=(0, 1, 2)) -> bytes:
        chain = (self.leaf, self.intermediate, self.root)
        return b"".join(pem(chain[i]) for i in order)

    def install(self, secret_dir, order=(0, 1, 2)) -> None:
        """Into secret/tls/ as an admin copies them: the certificate file, then the key."""
        (secret_dir / "tls").mkdir(parents=True, exist_ok=True)
        (secret_dir / "tls/tls.crt").write_bytes(self.chain_pem(order))
        (secret_dir / "tls/tls.key").write_bytes(key_pem(self.key))


def lab_certificate(names=("lab.example.edu",), days=(-1, 90), root_name="Lab Root") -> LabCertificate:
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert(root_name, root_key)
    mid = _cert(root_name + " Intermediate", mid_key, root, root_key)
    leaf = _cert(names[0], leaf_key, mid, mid_key, days=days, names=names, ca=False)
    return LabCertificate(leaf, mid, root, leaf_key)


def certificate_authority(name: str):
    """A test CA: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _cert(name, key), key


def server_certificate(names, ca_cert: x509.Certificate, ca_key, days=(-1, 30)) -> tuple[bytes, bytes]:
    """A leaf for a test peer (PEM certificate, PEM key), issued by a test CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    return pem(_cert(names[0], key, ca_cert, ca_key, days=days, names=names, ca=False)), key_pem(key)
