import datetime
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import pki
from labhub import certs, settings
from labhub.settings import SettingError


def site(hostname="localhost", **more):
    return settings.load({"LABHUB_HOSTNAME": hostname, **{f"LABHUB_{k.upper()}": v for k, v in more.items()}})


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_makes_a_certificate_signed_by_a_local_ca(tmp_path):
    assert "made a certificate for lab.example.edu" in "\n".join(certs.ensure_certificate(tmp_path, site("lab.example.edu")))
    files = certs.TlsFiles(tmp_path)
    cert, ca = load(files.cert), load(files.ca_cert)
    assert sans(cert) == ["lab.example.edu", "localhost"]
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600


def test_keeps_a_valid_certificate_and_renews_for_a_new_host_name(tmp_path):
    certs.ensure_certificate(tmp_path, site("localhost"))
    files = certs.TlsFiles(tmp_path)
    first = files.cert.read_bytes()
    assert "valid until" in "\n".join(certs.ensure_certificate(tmp_path, site("localhost")))
    assert files.cert.read_bytes() == first
    assert "renewed" in "\n".join(certs.ensure_certificate(tmp_path, site("lab.example.edu")))
    assert sans(load(files.cert))[0] == "lab.example.edu"
    load(files.cert).verify_directly_issued_by(load(files.ca_cert))  # same CA: users trust it once


def test_renews_a_self_made_certificate_near_expiry(tmp_path, monkeypatch):
    certs.ensure_certificate(tmp_path, site("localhost"))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=certs.LEAF_DAYS - certs.RENEW_DAYS + 1)
    monkeypatch.setattr(certs, "_now", lambda: later)
    assert "renewed" in "\n".join(certs.ensure_certificate(tmp_path, site("localhost")))


def test_leaves_the_labs_own_certificate_alone(tmp_path):
    lab = tmp_path / "lab"
    certs.ensure_certificate(lab, site("lab.example.edu"))  # stands in for a certificate from elsewhere
    (tmp_path / "tls").mkdir()
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "tls" / name).write_bytes((lab / "tls" / name).read_bytes())
    assert "lab certificate for lab.example.edu" in "\n".join(certs.ensure_certificate(tmp_path, site("lab.example.edu")))
    assert not (tmp_path / "labhub-ca.crt").exists()


def test_certificate_without_key_is_refused(tmp_path):
    certs.ensure_certificate(tmp_path, site("localhost"))
    certs.TlsFiles(tmp_path).key.unlink()
    with pytest.raises(SettingError, match=r"^secret/tls/tls.key: missing while secret/tls/tls.crt is there; add it"):
        certs.ensure_certificate(tmp_path, site("localhost"))


def test_key_that_does_not_match_is_refused(tmp_path):
    certs.ensure_certificate(tmp_path, site("localhost"))
    other = ec.generate_private_key(ec.SECP256R1())
    certs.TlsFiles(tmp_path).key.write_bytes(certs._pem_key(other))
    with pytest.raises(SettingError, match=r"^secret/tls/tls.key: does not match secret/tls/tls.crt"):
        certs.ensure_certificate(tmp_path, site("localhost"))


def test_unreadable_certificate_is_refused_in_one_line(tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/tls.crt").write_text("garbage")
    (tmp_path / "tls/tls.key").write_text("garbage")
    with pytest.raises(SettingError) as e:
        certs.ensure_certificate(tmp_path, site("localhost"))
    assert str(e.value).startswith("secret/tls/tls.crt: cannot read a PEM certificate")
    assert "\n" not in str(e.value)


def lab_certificate(secret_dir, names=("lab.example.edu",), days=(-1, 90), order=(0, 1, 2)):
    lab = pki.lab_certificate(names, days)
    lab.install(secret_dir, order)
    return lab.leaf, lab.intermediate, lab.root


def test_the_labs_chain_in_any_order_is_served_leaf_first(tmp_path):
    leaf, mid, root = lab_certificate(tmp_path, order=(2, 0, 1))
    assert certs.mode(tmp_path, site("lab.example.edu")) == "provided"
    chain, _ = certs.served_pem(tmp_path, site("lab.example.edu"))
    served = x509.load_pem_x509_certificates(chain.encode())
    assert [c.subject for c in served] == [leaf.subject, mid.subject, root.subject]


def test_an_expired_lab_certificate_is_refused(tmp_path):
    lab_certificate(tmp_path, days=(-100, -1))
    with pytest.raises(SettingError, match=r"^secret/tls/tls.crt: expired on \d{4}-\d\d-\d\d; put the renewed"):
        certs.ensure_certificate(tmp_path, site("lab.example.edu"))


def test_a_lab_certificate_for_another_host_is_refused(tmp_path):
    lab_certificate(tmp_path, names=("other.example.edu",))
    with pytest.raises(SettingError, match=r"^secret/tls/tls.crt: made for other.example.edu, not for "
                                           r"LABHUB_HOSTNAME=lab.example.edu, so browsers refuse it; set LABHUB_HOSTNAME"):
        certs.ensure_certificate(tmp_path, site("lab.example.edu"))


def test_a_wildcard_covers_one_label(tmp_path):
    lab_certificate(tmp_path, names=("*.example.edu",))
    assert certs.problems(tmp_path, site("lab.example.edu")) == []
    assert "not for LABHUB_HOSTNAME=a.lab.example.edu" in certs.problems(tmp_path, site("a.lab.example.edu"))[0]


def test_a_lab_certificate_near_expiry_starts_with_a_warning(tmp_path):
    lab_certificate(tmp_path, days=(-80, 10))
    summary, warning = certs.ensure_certificate(tmp_path, site("lab.example.edu"))
    assert summary.startswith("lab certificate for lab.example.edu valid until")
    assert warning.startswith("secret/tls/tls.crt: expires on") and "no restart needed" in warning


def test_provided_mode_without_files_is_refused(tmp_path):
    with pytest.raises(SettingError, match=r"^secret/tls/tls.crt: missing; put the lab's certificate and key there"):
        certs.ensure_certificate(tmp_path, site("lab.example.edu", tls="provided"))


def test_self_signed_mode_does_not_replace_the_labs_certificate(tmp_path):
    lab_certificate(tmp_path)
    with pytest.raises(SettingError, match=r"is the lab's certificate but LABHUB_TLS=self-signed; set LABHUB_TLS=provided"):
        certs.ensure_certificate(tmp_path, site("lab.example.edu", tls="self-signed"))


def test_acme_mode_keeps_nothing_in_secret(tmp_path):
    lines = certs.ensure_certificate(tmp_path, site("lab.example.edu", tls="acme", acme_email="it@example.edu"))
    assert lines == ["Traefik gets the certificate for lab.example.edu from "
                     "https://acme-v02.api.letsencrypt.org/directory (http-01)"]
    assert not any(tmp_path.iterdir())


def test_acme_by_dns_01_needs_the_providers_credentials_in_secret(tmp_path):
    s = site("lab.example.edu", tls="acme", acme_email="it@example.edu", acme_challenge="dns-01",
             acme_dns_provider="cloudflare", user_subdomains="true")
    missing = ("secret/acme-dns.env: missing, yet LABHUB_ACME_CHALLENGE=dns-01; put the credentials of "
               "LABHUB_ACME_DNS_PROVIDER=cloudflare there, one VARIABLE=value a line, as "
               "https://go-acme.github.io/lego/dns/cloudflare/ names them")
    with pytest.raises(SettingError) as e:
        certs.ensure_certificate(tmp_path, s)
    assert str(e.value) == missing
    assert certs.problems(tmp_path, s) == [missing]
    (tmp_path / "acme-dns.env").write_text("CF_DNS_API_TOKEN=t0ken\n")
    assert certs.ensure_certificate(tmp_path, s) == [
        "Traefik gets the certificate for lab.example.edu, *.lab.example.edu from "
        "https://acme-v02.api.letsencrypt.org/directory (dns-01 through cloudflare)"]
    assert certs.problems(tmp_path, s) == []


def test_problems_lists_without_making_anything(tmp_path):
    assert certs.problems(tmp_path, site("lab.example.edu")) == []
    assert not any(tmp_path.iterdir())
    lab_certificate(tmp_path)
    certs.TlsFiles(tmp_path).key.write_bytes(certs._pem_key(ec.generate_private_key(ec.SECP256R1())))
    assert certs.problems(tmp_path, site("lab.example.edu")) == [
        "secret/tls/tls.key: does not match secret/tls/tls.crt; put the private key that belongs to this certificate there"]


def test_user_subdomains_get_a_wildcard_and_the_labs_certificate_must_cover_them(tmp_path):
    assert "renewed" not in "\n".join(certs.ensure_certificate(tmp_path, site("lab.example.edu")))
    # Turned on later: the self-made certificate is made again, for every user's host too.
    on = site("lab.example.edu", user_subdomains="true")
    assert "renewed the self-made certificate for lab.example.edu, *.lab.example.edu" in certs.ensure_certificate(tmp_path, on)
    assert sans(load(certs.TlsFiles(tmp_path).cert)) == ["lab.example.edu", "*.lab.example.edu", "localhost"]
    assert "valid until" in certs.ensure_certificate(tmp_path, on)[0]

    lab = tmp_path / "lab"
    certs.ensure_certificate(lab, site("lab.example.edu"))  # the lab's own, for the host alone
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "tls" / name).write_bytes((lab / "tls" / name).read_bytes())
    (tmp_path / "labhub-ca.crt").unlink()
    with pytest.raises(SettingError, match=r"^secret/tls/tls.crt: made for lab.example.edu, localhost, not for "
                                           r"\*.lab.example.edu, .* or set LABHUB_USER_SUBDOMAINS=false$"):
        certs.ensure_certificate(tmp_path, on)
    # A wildcard one level up covers the hub, not the users' hosts under it.
    certs.ensure_certificate(lab, site("example.edu", user_subdomains="true"))
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "tls" / name).write_bytes((lab / "tls" / name).read_bytes())
    assert "not for *.lab.example.edu" in certs.problems(tmp_path, on)[0]


def test_an_extra_ca_that_is_no_pem_certificate_is_named_with_the_fix(tmp_path):
    ca = pki.certificate_authority("University CA")[0]
    (tmp_path / "good.crt").write_bytes(pki.pem(ca))
    (tmp_path / "der.crt").write_bytes(ca.public_bytes(serialization.Encoding.DER))
    (tmp_path / "README.md").write_text("not a certificate, and not named as one")
    assert certs.extra_ca_problems(tmp_path) == [
        "ca-certificates/der.crt: holds no PEM certificate, so nothing trusts it; save the CA as PEM "
        "(-----BEGIN CERTIFICATE-----), e.g. openssl x509 -inform der -in CA.der -out ca-certificates/der.crt"]
    assert certs.extra_ca_problems(tmp_path / "missing") == []
