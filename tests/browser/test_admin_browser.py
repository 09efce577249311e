"""In Chromium: Flask-Admin's confirmations still work under our Content-Security-Policy (no inline scripts).

Chromium still reports the blocked onclick attributes in the console; static/csp-shim.js rebinds them as listeners.
"""
import pytest
from playwright.sync_api import expect

from models.institutions import Institution
from nanbyo.demo import create_demo
from nanbyo.extensions import db
from tests.browser.helpers import DEMO_PASSWORD, log_in
from tests.helpers import gen_institution, gen_municipality

pytestmark = pytest.mark.browser



def test_delete_asks_for_confirmation_under_csp(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    # A closed clinic nothing refers to (the demo's clinics have members and documents: those are refused).
    clinic_id = gen_institution(gen_municipality(), code="1319999995", name="閉院クリニック").id
    context = browser.new_context(locale="ja-JP")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    dialogs = []
    try:
        log_in(page, live_server, "operator", keys["operator"], DEMO_PASSWORD)
        page.goto(f"{live_server}/admin/institution/")
        row = page.locator("table.model-list tbody tr", has_text="1319999995")

        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        row.locator("form button, form a, form input[type=submit]").first.click()
        page.wait_for_timeout(300)
        assert dialogs and "削除" in dialogs[0]
        db.session.expire_all()
        assert db.session.get(Institution, clinic_id) is not None, "dismissed confirmation must not delete"

        page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        with page.expect_navigation():
            row.locator("form button, form a, form input[type=submit]").first.click()
        expect(page.locator("table.model-list tbody")).not_to_contain_text("1319999995")
        db.session.expire_all()
        assert db.session.get(Institution, clinic_id) is None
        # One that documents and members refer to stays, and the clerk is told why and what to do instead.
        referenced = page.locator("table.model-list tbody tr", has_text="1310000025")
        page.once("dialog", lambda d: d.accept())
        with page.expect_navigation():
            referenced.locator("form button, form a, form input[type=submit]").first.click()
        expect(page.locator(".alert")).to_contain_text("参照されているため削除できません")
        expect(page.locator("table.model-list tbody")).to_contain_text("1310000025")
    finally:
        context.close()
