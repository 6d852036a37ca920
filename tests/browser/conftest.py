"""Browser fixtures: Debian's Chromium driven by Playwright, trusting exactly the stack's
certificate (its CA is not in Chromium's store)."""

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def spki_pin(cert_file) -> str:
    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# Per module: Playwright's sync API keeps an event loop running in the test thread while it is
# open, and later tests (the hub's async hooks) need to run loops of their own.
@pytest.fixture(scope="module")
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


def _network_changed(error: Exception) -> bool:
    # Chromium drops requests in flight when the host's network interfaces change, which Docker
    # does whenever it makes a network (each user server gets one): a person would just reload.
    return "ERR_NETWORK_CHANGED" in str(error)


def submit_form(page, path: str, fields: dict, button: str, attempts=3) -> None:
    """Opens path, fills the form and submits it; again if Chromium dropped it (see above)."""
    for attempt in range(1, attempts + 1):
        try:
            page.goto(path)
            for selector, value in fields.items():
                page.fill(selector, value)
            page.click(button)
            page.wait_for_load_state()
            if not page.url.startswith("chrome-error:"):
                return
        except PlaywrightError as error:
            if not _network_changed(error) or attempt == attempts:
                raise
    raise AssertionError(f"{path}: the browser could not submit the form")


def log_in(page, user, password):
    submit_form(page, "/hub/login", {"#username_input": user, "#password_input": password}, "#login_submit")


def _dropped(page) -> bool:
    return page.url.startswith("chrome-error:")


def open_lab(page, user, attempts=3):
    """After logging in: choose the default flavor on the spawn form (shown when more than one
    is built), then wait for JupyterLab. The spawn request is in flight while the hub makes the
    server's network, so Chromium drops it (see above): then go on to the lab, as a person would."""
    for attempt in range(1, attempts + 1):
        try:
            page.wait_for_url(lambda url: "/hub/spawn" in url or f"/user/{user}/" in url or url.startswith("chrome-error:"),
                              timeout=120_000)
            if not _dropped(page) and ("/hub/spawn/" in page.url or page.url.endswith("/hub/spawn")):
                page.click("form#spawn_form [type=submit]")
            page.wait_for_url(lambda url: f"/user/{user}/lab" in url or url.startswith("chrome-error:"), timeout=120_000)
            if not _dropped(page):
                page.wait_for_selector(".jp-Launcher", timeout=120_000)
                return
        except PlaywrightError as error:
            if not _network_changed(error):
                raise
        if attempt < attempts:
            page.goto(f"/user/{user}/lab")  # where the spawn was taking us; its progress page if not ready
    raise AssertionError(f"JupyterLab did not open for {user}: {page.url}")
