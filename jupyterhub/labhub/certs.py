"""The certificate LabHub serves (LABHUB_TLS): the lab's own (secret/tls/tls.crt + tls.key, checked
before anything serves it), one issued by a local LabHub CA (secret/labhub-ca.crt, which users
trust once; renewed before expiry), or one Traefik gets by ACME (nothing kept in secret/ but, for
dns-01, the DNS provider's credentials in secret/acme-dns.env)."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .files import write_atomic
from .settings import ACME_DNS_ENV, LEGO_DNS_PROVIDERS, Settings, SettingError

EXTRA_CA_DIR = Path("/srv/jupyterhub/ca-certificates")  # the site's extra CAs (ca-certificates/), as mounted now
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_BUNDLE = "ca-certificates.pem"  # ca_bundle()'s file, where Traefik and Alertmanager read it
CA_NAME = "LabHub local CA"
LEAF_DAYS = 365
RENEW_DAYS = 30  # a self-made certificate this close to expiry is renewed
WARN_DAYS = 21  # the lab's certificate this close to expiry is worth a warning at every start


class TlsFiles:
    def __init__(self, secret_dir: Path):
        self.secret_dir = secret_dir
        self.cert = secret_dir / "tls" / "tls.crt"
        self.key = secret_dir / "tls" / "tls.key"
        self.ca_cert = secret_dir / "labhub-ca.crt"
        self.ca_key = secret_dir / "labhub-ca.key"
        self.acme_dns_env = secret_dir / ACME_DNS_ENV

    def shown(self, path: Path) -> str:
        """The path as the admin sees it, relative to the repo."""
        return "secret/" + str(path.relative_to(self.secret_dir))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode)  # so Traefik's file watcher never sees half a file


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _read_certs(files: TlsFiles, path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (the lab's may hold its chain, in any order)."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        raise SettingError(f"{files.shown(path)}: cannot read a PEM certificate; "
                           "replace it with the PEM file (BEGIN CERTIFICATE) or remove it") from None


def _read_cert(files: TlsFiles, path: Path) -> x509.Certificate:
    return _read_certs(files, path)[0]


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


def served_names(s: Settings) -> list[str]:
    """The names the served certificate must cover: the host name, and with LABHUB_USER_SUBDOMAINS
    every user's host under it."""
    return [s.hostname] + ([f"*.{s.hostname}"] if s.user_subdomains else [])


def _issue(files: TlsFiles, names: list[str]) -> None:
    ca_cert, ca_key = _ensure_ca(files)
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(n) for n in dict.fromkeys([*names, "localhost"])]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
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


def _covers(cert: x509.Certificate, hostname: str) -> bool:
    """Whether a browser accepts the certificate for hostname (a wildcard covers one label)."""
    for name in _dns_names(cert):
        name = name.lower()
        if name == hostname or (name.startswith("*.") and hostname.partition(".")[2] == name[2:]):
            return True
    return False


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _chain_in_order(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, then each issuer after what it issued (TLS servers send them in that order)."""
    chain, rest = [leaf], list(others)
    while issuer := next((c for c in rest if c.subject == chain[-1].issuer), None):
        chain.append(issuer)
        rest.remove(issuer)
    return chain + rest


def _mismatch(files: TlsFiles) -> SettingError:
    return SettingError(f"{files.shown(files.key)}: does not match {files.shown(files.cert)}; "
                        "put the private key that belongs to this certificate there")


class _Provided:
    """The lab's certificate, checked: key, validity, host names. Anything wrong is a SettingError."""

    def __init__(self, files: TlsFiles, s: Settings):
        for present, missing in ((files.key, files.cert), (files.cert, files.key)):
            if not missing.exists():
                fix = (f"add it, or remove {files.shown(present)} to use a self-made certificate" if present.exists()
                       else "put the lab's certificate and key there (README: HTTPS), or set LABHUB_TLS=auto")
                raise SettingError(f"{files.shown(missing)}: missing" + (f" while {files.shown(present)} is there" if present.exists() else "") + f"; {fix}")
        certificates, key = _read_certs(files, files.cert), _read_key(files, files.key)
        leaf = next((c for c in certificates if _spki(c.public_key()) == _spki(key.public_key())), None)
        if leaf is None:
            raise _mismatch(files)
        now, shown = _now(), files.shown(files.cert)
        if leaf.not_valid_after_utc < now:
            raise SettingError(f"{shown}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}; put the renewed certificate "
                               "there, or remove secret/tls/ to use a self-made one")
        if leaf.not_valid_before_utc > now:
            raise SettingError(f"{shown}: not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                               "check the machine's clock, or use the previous certificate until then")
        names = ", ".join(_dns_names(leaf)) or "no host name"
        if not _covers(leaf, s.hostname):
            raise SettingError(f"{shown}: made for {names}, not for LABHUB_HOSTNAME={s.hostname}, so browsers refuse it; "
                               "set LABHUB_HOSTNAME to a name it covers (in .env), or get a certificate for this one")
        if not all(_covers(leaf, name) for name in served_names(s)):
            raise SettingError(f"{shown}: made for {names}, not for *.{s.hostname}, where LABHUB_USER_SUBDOMAINS puts "
                               f"users' servers, so browsers refuse them; get a certificate for {s.hostname} and "
                               f"*.{s.hostname}, or set LABHUB_USER_SUBDOMAINS=false")
        self.chain = _chain_in_order(leaf, [c for c in certificates if c is not leaf])
        self.key = key
        self.warnings = []
        if leaf.not_valid_after_utc - now < datetime.timedelta(days=WARN_DAYS):
            self.warnings.append(f"{shown}: expires on {leaf.not_valid_after_utc:%Y-%m-%d}; "
                                 "put the renewed certificate there soon (no restart needed)")
        self.summary = f"lab certificate for {', '.join(_dns_names(leaf))} valid until {leaf.not_valid_after_utc:%Y-%m-%d}"


def _check_acme(files: TlsFiles, s: Settings) -> None:
    """dns-01 needs the DNS provider's credentials; which ones, only lego knows (labhub check names
    those it missed, from Traefik's log)."""
    if s.acme_challenge == "dns-01" and not files.acme_dns_env.is_file():
        raise SettingError(f"{files.shown(files.acme_dns_env)}: missing, yet LABHUB_ACME_CHALLENGE=dns-01; put the "
                           f"credentials of LABHUB_ACME_DNS_PROVIDER={s.acme_dns_provider} there, one VARIABLE=value "
                           f"a line, as {LEGO_DNS_PROVIDERS}{s.acme_dns_provider}/ names them")


def mode(secret_dir: Path, s: Settings) -> str:
    """provided, self-signed or acme: LABHUB_TLS, with auto resolved by what secret/tls/ holds."""
    files = TlsFiles(secret_dir)
    if s.tls != "auto":
        return s.tls
    if files.cert.exists() or files.key.exists():
        if files.cert.exists() and files.ca_cert.exists() and _is_self_made(files, _read_cert(files, files.cert)):
            return "self-signed"
        return "provided"
    return "self-signed"


def ensure_certificate(secret_dir: Path, s: Settings) -> list[str]:
    """Makes sure the certificate LabHub is to serve is there and sound: checks the lab's, makes or
    renews the self-made one. Returns what it did, then any warnings; refuses with SettingError."""
    files, names = TlsFiles(secret_dir), served_names(s)
    chosen = mode(secret_dir, s)
    if chosen == "acme":
        _check_acme(files, s)
        how = s.acme_challenge + (f" through {s.acme_dns_provider}" if s.acme_dns_provider else "")
        return [f"Traefik gets the certificate for {', '.join(names)} from {s.acme_server} ({how})"]
    if chosen == "provided":
        provided = _Provided(files, s)
        return [provided.summary, *provided.warnings]
    if files.cert.exists() and files.key.exists():
        cert = _read_cert(files, files.cert)
        if not _is_self_made(files, cert):
            raise SettingError(f"{files.shown(files.cert)}: is the lab's certificate but LABHUB_TLS=self-signed; "
                               "set LABHUB_TLS=provided (or auto) in .env, or remove secret/tls/")
        if _spki(cert.public_key()) != _spki(_read_key(files, files.key).public_key()):
            raise _mismatch(files)
        if cert.not_valid_after_utc - _now() < datetime.timedelta(days=RENEW_DAYS) or \
                not set(names) <= set(_dns_names(cert)):
            _issue(files, names)
            return [f"renewed the self-made certificate for {', '.join(names)}"]
        return [f"self-made certificate for {', '.join(names)} valid until {cert.not_valid_after_utc:%Y-%m-%d}"]
    if files.cert.exists() != files.key.exists():
        _Provided(files, s)  # refuses, naming the missing file
    _issue(files, names)
    return [f"made a certificate for {', '.join(names)} signed by {files.shown(files.ca_cert)}"]


def problems(secret_dir: Path, s: Settings) -> list[str]:
    """What is wrong with the certificate LabHub would serve, one line each; nothing is made."""
    files = TlsFiles(secret_dir)
    try:
        chosen = mode(secret_dir, s)
        if chosen == "acme":
            _check_acme(files, s)
        if chosen != "provided":
            return []  # self-made ones are (re)made as needed; ACME is Traefik's
        return _Provided(files, s).warnings
    except SettingError as error:
        return [str(error)]


def served_pem(secret_dir: Path, s: Settings) -> tuple[str, str]:
    """The certificate chain (leaf first) and key to serve, as PEM text, once ensure_certificate
    accepted them; the lab's chain may be in any order in secret/tls/tls.crt."""
    files = TlsFiles(secret_dir)
    if mode(secret_dir, s) == "provided":
        provided = _Provided(files, s)
        chain, key = provided.chain, provided.key
    else:
        chain, key = [_read_cert(files, files.cert)], _read_key(files, files.key)
    return ("".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain), _pem_key(key).decode())


def hub_ssl_files(secret_dir: Path, data_dir: Path, s: Settings) -> tuple[str, str]:
    """For the hub-direct mode: the served chain (leaf first) and key, written where the hub's
    proxy reads them (the state volume: secret/ is read-only in the hub)."""
    chain, key = served_pem(secret_dir, s)
    cert_file, key_file = data_dir / "tls" / "tls.crt", data_dir / "tls" / "tls.key"
    _write(key_file, key.encode(), 0o600)
    _write(cert_file, chain.encode(), 0o644)
    return str(cert_file), str(key_file)


def ca_bundle() -> str:
    """What LabHub's own connections out trust (Traefik's ACME client, Alertmanager's mail and
    webhooks): public roots plus the site's extra CAs (an institution's ACME or mail server, or
    the one a test runs), read when the files are written, so a new CA needs no image rebuild."""
    extra = sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    return SYSTEM_CA_BUNDLE.read_text() + "".join(p.read_text().rstrip() + "\n" for p in extra)


def extra_ca_problems(folder: Path = EXTRA_CA_DIR) -> list[str]:
    """The site's extra CA files nothing could trust: each *.crt must hold a PEM certificate
    (update-ca-certificates skips others at image builds, and TLS clients skip them at run time)."""
    problems = []
    for path in sorted(folder.glob("*.crt")) if folder.is_dir() else []:
        try:
            x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError:
            problems.append(f"ca-certificates/{path.name}: holds no PEM certificate, so nothing trusts it; save the "
                            f"CA as PEM (-----BEGIN CERTIFICATE-----), e.g. openssl x509 -inform der -in CA.der "
                            f"-out ca-certificates/{path.name}")
    return problems
