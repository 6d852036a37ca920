"""Browser fixtures: Debian's Chromium driven by Playwright, trusting exactly the stack's
certificate (its CA is not in Chromium's store)."""

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def spki_pin(cert_file) -> str:
    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="session")
def browser(stack):
    pin = spki_pin(stack.secret / "tls" / "tls.crt")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=CHROMIUM_ARGS + [f"--ignore-certificate-errors-spki-list={pin}"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, stack):
    """Makes pages in fresh browser contexts (separate cookies: separate people)."""
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=stack.url)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def log_in(page, user, password):
    page.goto("/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")


def open_lab(page, user):
    """After logging in: choose the default flavor on the spawn form (shown when more than one
    is built), then wait for JupyterLab."""
    page.wait_for_url(lambda url: "/hub/spawn" in url or f"/user/{user}/" in url, timeout=120_000)
    if "/hub/spawn/" in page.url or page.url.endswith("/hub/spawn"):
        page.click("form#spawn_form [type=submit]")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
    page.wait_for_selector(".jp-Launcher", timeout=120_000)
