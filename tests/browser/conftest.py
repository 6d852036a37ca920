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


def _network_changed(error) -> bool:
    # Chromium drops requests in flight when the host's network interfaces change, which Docker
    # does whenever it makes a network or starts a container (a new interface gets its IPv6
    # address a second or two later): a person would just reload.
    return "ERR_NETWORK_CHANGED" in str(error)


def _reloadable(error) -> bool:
    """Chromium dropped the navigation (above), or a redirect it was following replaced it."""
    return _network_changed(error) or "interrupted by another navigation" in str(error)


def _dropped(page) -> bool:
    return page.url.startswith("chrome-error:")


def _until_not_dropped(page, what: str, navigate, attempts=3) -> None:
    """Runs navigate(), again where Chromium dropped it (see above), as a person would reload."""
    for attempt in range(1, attempts + 1):
        try:
            navigate()
            if not _dropped(page):
                return
        except PlaywrightError as error:
            if not _reloadable(error) or attempt == attempts:
                raise
        page.wait_for_timeout(2_000)  # the host's interfaces settle (a new one's IPv6 address)
    raise AssertionError(f"{what}: the browser could not open it: {page.url}")


def goto(page, url: str) -> None:
    _until_not_dropped(page, url, lambda: page.goto(url))


def submit_form(page, path: str, fields: dict, button: str) -> None:
    """Opens path, fills the form and submits it."""
    def submit():
        page.goto(path)
        for selector, value in fields.items():
            page.fill(selector, value)
        with page.expect_navigation():  # the form's answer, not the form itself still loaded
            page.click(button)

    _until_not_dropped(page, f"{path}, submitted", submit)


def log_in(page, user, password):
    submit_form(page, "/hub/login", {"#username_input": user, "#password_input": password}, "#login_submit")


def _wait_for_launcher(page, dropped_requests) -> None:
    try:
        page.wait_for_selector(".jp-Launcher", timeout=30_000)
    except PlaywrightError:
        if dropped_requests:
            raise
        page.wait_for_selector(".jp-Launcher", timeout=90_000)  # a slow machine, nothing dropped


def open_lab(page, user, attempts=5):
    """After logging in: choose the default flavor on the spawn form (shown when more than one
    is built), then wait for JupyterLab. Chromium may drop the spawn request, the way to the lab,
    or the scripts and API calls JupyterLab loads (see above; its launcher then never shows):
    then go on to the lab again, as a person would reload."""
    dropped_requests = []
    page.on("requestfailed", lambda request: _network_changed(request.failure) and dropped_requests.append(request.url))
    for attempt in range(1, attempts + 1):
        dropped_requests.clear()
        try:
            if attempt > 1:
                page.goto(f"/user/{user}/lab")  # where the spawn was taking us; its progress page if not ready
            page.wait_for_url(lambda url: "/hub/spawn" in url or f"/user/{user}/" in url or url.startswith("chrome-error:"),
                              timeout=120_000)
            if not _dropped(page) and ("/hub/spawn/" in page.url or page.url.endswith("/hub/spawn")):
                page.click("form#spawn_form [type=submit]")
            page.wait_for_url(lambda url: f"/user/{user}/lab" in url or url.startswith("chrome-error:"), timeout=120_000)
            if not _dropped(page):
                _wait_for_launcher(page, dropped_requests)
                return
        except PlaywrightError as error:
            # (the spawn page also goes on to the lab by itself once the server is ready)
            if not (_reloadable(error) or dropped_requests):
                raise
        page.wait_for_timeout(2_000)  # the host's interfaces settle (a new one's IPv6 address)
    raise AssertionError(f"JupyterLab did not open for {user}: {page.url}")
