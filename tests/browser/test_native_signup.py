"""Native logins in Chromium: sign up, wait for approval, get approved in the admin's UI, log in;
weak passwords refused at signup; five wrong passwords lock the account."""

from conftest import log_in, open_lab, submit_form

PASSWORD = "Gravity-Apple-1687"


def sign_up(page, user, password):
    submit_form(page, "/hub/signup", {"#username_input": user, "#password_input": password,
                                      "#password_confirmation_input": password}, "#signup_submit")
    return page.locator(".alert").inner_text()


def test_signup_approval_and_login(stack, new_page, artifacts):
    newcomer = new_page()
    assert "at least 8 characters" in sign_up(newcomer, "newton", "apple")
    assert "not too common" in sign_up(newcomer, "newton", "12345678")
    assert "sent to the admin" in sign_up(newcomer, "newton", PASSWORD)

    log_in(newcomer, "newton", PASSWORD)
    assert "has not been authorized by an administrator yet" in newcomer.locator(".login_error").inner_text()

    admin = new_page()
    log_in(admin, "admin", stack.admin_password())
    admin.wait_for_url(lambda url: "/hub/login" not in url, timeout=60_000)
    admin.goto("/hub/authorize")
    admin.click("tr#newton >> text=Authorize")
    admin.wait_for_selector("tr#newton.success")
    admin.screenshot(path=str(artifacts / "native-approved.png"))

    log_in(newcomer, "newton", PASSWORD)
    open_lab(newcomer, "newton")


def test_five_wrong_passwords_lock_the_account(stack, new_page):
    page = new_page()
    assert "sent to the admin" in sign_up(page, "guesser", PASSWORD)
    approver = new_page()
    log_in(approver, "admin", stack.admin_password())
    approver.goto("/hub/authorize/guesser")  # the Authorize button's link

    for _ in range(5):
        log_in(page, "guesser", "wrong-password")
        assert "Invalid username or password" in page.locator(".login_error").inner_text()
    log_in(page, "guesser", PASSWORD)
    assert "Invalid username or password" in page.locator(".login_error").inner_text()
    assert "/hub/login" in page.url
