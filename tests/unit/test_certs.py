import datetime
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from labhub import certs
from labhub.settings import SettingError


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_makes_a_certificate_signed_by_a_local_ca(tmp_path):
    assert "made a certificate for lab.example.edu" in certs.ensure_certificate(tmp_path, "lab.example.edu")
    files = certs.TlsFiles(tmp_path)
    cert, ca = load(files.cert), load(files.ca_cert)
    assert sans(cert) == ["lab.example.edu", "localhost"]
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600


def test_keeps_a_valid_certificate_and_renews_for_a_new_host_name(tmp_path):
    certs.ensure_certificate(tmp_path, "localhost")
    files = certs.TlsFiles(tmp_path)
    first = files.cert.read_bytes()
    assert "valid until" in certs.ensure_certificate(tmp_path, "localhost")
    assert files.cert.read_bytes() == first
    assert "renewed" in certs.ensure_certificate(tmp_path, "lab.example.edu")
    assert sans(load(files.cert))[0] == "lab.example.edu"
    load(files.cert).verify_directly_issued_by(load(files.ca_cert))  # same CA: users trust it once


def test_renews_a_self_made_certificate_near_expiry(tmp_path, monkeypatch):
    certs.ensure_certificate(tmp_path, "localhost")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=certs.LEAF_DAYS - certs.RENEW_DAYS + 1)
    monkeypatch.setattr(certs, "_now", lambda: later)
    assert "renewed" in certs.ensure_certificate(tmp_path, "localhost")


def test_leaves_the_labs_own_certificate_alone(tmp_path):
    lab = tmp_path / "lab"
    certs.ensure_certificate(lab, "lab.example.edu")  # stands in for a certificate from elsewhere
    (tmp_path / "tls").mkdir()
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "tls" / name).write_bytes((lab / "tls" / name).read_bytes())
    assert "lab certificate for lab.example.edu" in certs.ensure_certificate(tmp_path, "lab.example.edu")
    assert not (tmp_path / "labhub-ca.crt").exists()


def test_certificate_without_key_is_refused(tmp_path):
    certs.ensure_certificate(tmp_path, "localhost")
    certs.TlsFiles(tmp_path).key.unlink()
    with pytest.raises(SettingError, match=r"^secret/tls/tls.key: missing while secret/tls/tls.crt is there; add it"):
        certs.ensure_certificate(tmp_path, "localhost")


def test_key_that_does_not_match_is_refused(tmp_path):
    certs.ensure_certificate(tmp_path, "localhost")
    other = ec.generate_private_key(ec.SECP256R1())
    certs.TlsFiles(tmp_path).key.write_bytes(certs._pem_key(other))
    with pytest.raises(SettingError, match=r"^secret/tls/tls.key: does not match secret/tls/tls.crt"):
        certs.ensure_certificate(tmp_path, "localhost")


def test_unreadable_certificate_is_refused_in_one_line(tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/tls.crt").write_text("garbage")
    (tmp_path / "tls/tls.key").write_text("garbage")
    with pytest.raises(SettingError) as e:
        certs.ensure_certificate(tmp_path, "localhost")
    assert str(e.value).startswith("secret/tls/tls.crt: cannot read a PEM certificate")
    assert "\n" not in str(e.value)
