"""A real browser logs in and reaches JupyterLab."""

from conftest import log_in


def test_browser_logs_in_and_reaches_jupyterlab(stack, new_page, artifacts):
    page = new_page()
    log_in(page, "admin", stack.admin_password())
    page.wait_for_url("**/user/admin/lab**", timeout=120_000)
    page.wait_for_selector(".jp-Launcher", timeout=120_000)
    page.screenshot(path=str(artifacts / "jupyterlab.png"))
    assert "JupyterLab" in page.title()
