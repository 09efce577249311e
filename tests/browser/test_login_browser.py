"""In Chromium: log in as a 自治体 user through the real form (password + key file upload) and see the 医療機関 list
in Japanese, scoped to the user's 自治体."""
import pytest
from playwright.sync_api import expect

from nanbyo.demo import create_demo
from tests.browser.helpers import DEMO_PASSWORD

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_login_with_key_file_then_japanese_institution_list(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    key_path = keys["muni-tokyo"]
    assert key_path == tmp_path / "demo-keys" / "muni-tokyo.key" and key_path.stat().st_size > 0

    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 800})
    # Only the live server on 127.0.0.1 may be contacted; anything else is aborted.
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    try:
        page.goto(f"{live_server}/login")
        expect(page.locator("h1")).to_have_text("ログイン")
        page.fill("input[name=login_id]", "muni-tokyo")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.set_input_files("input[name=key_file]", str(key_path))
        with page.expect_navigation():
            page.click("form button[type=submit]")
        assert "/login" not in page.url, "login failed:\n" + page.inner_text("body")

        response = page.goto(f"{live_server}/admin/institution/")
        assert response.status == 200 and page.url.startswith(f"{live_server}/admin/institution/")

        # The logged-in user in the navbar.
        expect(page.locator("#current-user")).to_have_text("東京都 担当者")
        expect(page.locator("#current-user-menu")).to_have_attribute("title", "muni-tokyo")
        # The demo's 医療機関 of 東京都 only: 大阪府's is out of this user's scope.
        rows = page.locator("table.model-list tbody")
        expect(rows).to_contain_text("東京見本病院")
        expect(rows).to_contain_text("東京見本クリニック")
        expect(page.locator("body")).not_to_contain_text("大阪見本病院")
        # Flask-Admin's own UI strings in its Japanese translation, and the view's Japanese column labels.
        expect(page.locator("h4")).to_have_text("医療機関")
        expect(page.locator("ul.nav-tabs a.nav-link.active")).to_have_text("一覧 (2)")
        expect(page.locator("ul.nav-tabs")).to_contain_text("作成")
        expect(page.get_by_role("button", name="検索")).to_be_visible()
        expect(page.locator("input.action-rowtoggle")).to_have_attribute("title", "すべてのレコードを選択")
        expect(page.locator("table.model-list thead")).to_contain_text("医療機関名")

        shot = tmp_path / "institution-list.png"
        page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)
    finally:
        context.close()
