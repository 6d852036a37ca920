"""A real browser logs in and reaches JupyterLab."""

from conftest import log_in, open_lab


def test_browser_logs_in_and_reaches_jupyterlab(stack, new_page, artifacts):
    page = new_page()
    log_in(page, "admin", stack.admin_password())
    open_lab(page, "admin")
    page.screenshot(path=str(artifacts / "jupyterlab.png"))
    assert "JupyterLab" in page.title()
