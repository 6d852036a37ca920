"""A real browser (Debian's Chromium, driven by Playwright) logs in and reaches JupyterLab."""

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def spki_pin(cert_file) -> str:
    """Chromium trusts exactly this certificate's key (the CA is not in its store)."""
    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_browser_logs_in_and_reaches_jupyterlab(stack, artifacts):
    pin = spki_pin(stack.secret / "tls" / "tls.crt")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=CHROMIUM_ARGS + [f"--ignore-certificate-errors-spki-list={pin}"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto("https://localhost/")
            page.fill("#username_input", "admin")
            page.fill("#password_input", stack.admin_password())
            page.click("#login_submit")
            page.wait_for_url("**/user/admin/lab**", timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
            page.wait_for_selector(".jp-Launcher", timeout=60_000)
            page.screenshot(path=str(artifacts / "jupyterlab.png"))
            assert "JupyterLab" in page.title()
        finally:
            browser.close()
