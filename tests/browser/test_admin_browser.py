"""In Chromium: Flask-Admin's confirmations still work under our Content-Security-Policy (no inline scripts).

Chromium still reports the blocked onclick attributes in the console; static/csp-shim.js rebinds them as listeners.
"""
import pytest
from playwright.sync_api import expect

from models.institutions import Institution
from nanbyo.demo import create_demo
from nanbyo.extensions import db

pytestmark = pytest.mark.browser

PASSWORD = "browser-demo-2026"


def _login(page, base, login_id, key_path):
    page.goto(f"{base}/login")
    page.fill("input[name=login_id]", login_id)
    page.fill("input[name=password]", PASSWORD)
    page.set_input_files("input[name=key_file]", str(key_path))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/login" not in page.url


def test_delete_asks_for_confirmation_under_csp(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", PASSWORD))
    clinic_id = db.session.execute(db.select(Institution.id).filter_by(code="1310000025")).scalar_one()
    context = browser.new_context(locale="ja-JP")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    dialogs = []
    try:
        _login(page, live_server, "operator", keys["operator"])
        page.goto(f"{live_server}/admin/institution/")
        row = page.locator("table.model-list tbody tr", has_text="1310000025")

        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        row.locator("form button, form a, form input[type=submit]").first.click()
        page.wait_for_timeout(300)
        assert dialogs and "削除" in dialogs[0]
        db.session.expire_all()
        assert db.session.get(Institution, clinic_id) is not None, "dismissed confirmation must not delete"

        page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        with page.expect_navigation():
            row.locator("form button, form a, form input[type=submit]").first.click()
        expect(page.locator("table.model-list tbody")).not_to_contain_text("1310000025")
        db.session.expire_all()
        assert db.session.get(Institution, clinic_id) is None
    finally:
        context.close()
