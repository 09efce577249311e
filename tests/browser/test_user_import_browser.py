"""In Chromium: a municipality clerk uploads a 医療機関ユーザデータファイル, checks the preview, confirms and
downloads the ID・PW発行通知書."""
import pytest
from playwright.sync_api import expect

from models.accounts import User
from nanbyo.demo import create_demo
from nanbyo.extensions import db
from tests.browser.test_admin_browser import PASSWORD, _login
from tests.userfile_helpers import doctor_row, xlsx_bytes

pytestmark = pytest.mark.browser


def test_clerk_uploads_previews_confirms_and_downloads_notices(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", PASSWORD))
    upload = tmp_path / "東京見本病院.xlsx"
    upload.write_bytes(xlsx_bytes([doctor_row(101, 指定医番号="13-N-0101"), doctor_row(102, 指定医番号="13-N-0102")]))
    before = db.session.query(User).count()
    context = browser.new_context(locale="ja-JP", accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    try:
        _login(page, live_server, "muni-tokyo", keys["muni-tokyo"])
        page.goto(f"{live_server}/admin/user-import/")
        page.set_input_files("input[name=file]", str(upload))
        with page.expect_navigation():
            page.click("#upload")
        preview = page.locator("#import-preview")
        expect(preview).to_contain_text("見本 医師101")
        expect(preview).to_contain_text("新規発行")
        expect(preview).to_contain_text("13-N-0102")
        db.session.expire_all()
        assert db.session.query(User).count() == before, "nothing is written before the clerk confirms"

        with page.expect_navigation():
            page.click("#confirm-import")
        expect(page.locator("#batch-users")).to_contain_text("見本 医師102")
        db.session.expire_all()
        assert db.session.query(User).count() == before + 2

        with page.expect_download() as download_info:
            page.click("#download-notices")
        path = tmp_path / "notices.pdf"
        download_info.value.save_as(path)
        assert path.read_bytes().startswith(b"%PDF")
    finally:
        context.close()
