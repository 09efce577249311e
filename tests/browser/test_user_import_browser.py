"""In Chromium: a municipality clerk uploads a 医療機関ユーザデータファイル, checks the preview, confirms and
downloads the ID・PW発行通知書."""
import pytest
from playwright.sync_api import expect

from models.accounts import User
from nanbyo.demo import create_demo
from nanbyo.extensions import db
from tests.browser.helpers import DEMO_PASSWORD, log_in
from tests.userfile_helpers import doctor_row, xlsx_bytes

pytestmark = pytest.mark.browser


def test_clerk_uploads_previews_confirms_and_downloads_notices(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    upload = tmp_path / "東京見本病院.xlsx"
    upload.write_bytes(xlsx_bytes([doctor_row(101, 指定医番号="13-N-0101"), doctor_row(102, 指定医番号="13-N-0102")]))
    before = db.session.query(User).count()
    context = browser.new_context(locale="ja-JP", accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    try:
        log_in(page, live_server, "muni-tokyo", keys["muni-tokyo"], DEMO_PASSWORD)
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


def _clerk_page(browser, live_server, keys):
    context = browser.new_context(locale="ja-JP", accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    log_in(page, live_server, "muni-tokyo", keys["muni-tokyo"], DEMO_PASSWORD)
    return context, page


def _primary_code(login_id):
    db.session.expire_all()
    user = db.session.execute(db.select(User).filter_by(login_id=login_id)).scalar_one()
    return user.primary_membership.institution.code, sorted(m.institution.code for m in user.memberships)


def test_clerk_ticks_the_primary_change_after_asking_the_institution(app, live_server, browser, tmp_path):
    # The demo's 「doctor」 (13-N-0002) works at 東京見本病院 and is 兼務 at 東京見本クリニック; 「manager」 (13-N-0001) is
    # 責任者 of 東京見本病院. The clinic's file lists both.
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    clinic = {"医療機関コード": "1310000025", "医療機関名": "東京見本クリニック"}
    upload = tmp_path / "東京見本クリニック.xlsx"
    upload.write_bytes(xlsx_bytes([doctor_row(2, 指定医番号="13-N-0002", **clinic),
                                   doctor_row(1, 指定医番号="13-N-0001", **clinic)]))
    context, page = _clerk_page(browser, live_server, keys)
    try:
        page.goto(f"{live_server}/admin/user-import/")
        page.set_input_files("input[name=file]", str(upload))
        with page.expect_navigation():
            page.click("#upload")
        expect(page.locator("#row-2")).to_contain_text("要確認：医療機関に主たる勤務先を確認")
        expect(page.locator("#row-3")).to_contain_text("先に責任者を交代してください")
        expect(page.locator("#change-primary-3")).to_have_count(0)
        page.check("#change-primary-2")
        with page.expect_navigation():
            page.click("#confirm-import")
        expect(page.locator("#batch-moved")).to_contain_text("見本 医師")
        assert _primary_code("doctor") == ("1310000025", ["1310000025"])
        assert _primary_code("manager") == ("1310000017", ["1310000017"]), "the 責任者 is left alone"
    finally:
        context.close()


def test_clerk_issues_one_id_with_the_individual_form(app, live_server, browser, tmp_path):
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    before = db.session.query(User).count()
    context, page = _clerk_page(browser, live_server, keys)
    try:
        page.goto(f"{live_server}/admin/user-import/")
        form = page.locator("#individual-form")
        form.locator("[name=application_ref]").fill("R8-指定-0777")
        form.locator("[name=doctor_kind]").select_option("小慢指定医")
        for name, value in (("doctor_number", "13-S-0777"), ("institution_code", "1310000017"),
                            ("department", "小児科"), ("family_name", "個別"), ("given_name", "花子"),
                            ("family_kana", "コベツ"), ("given_kana", "ハナコ"), ("email", "hanako@example.jp"),
                            ("valid_from", "2026-04-01"), ("valid_until", "2031-03-31")):
            form.locator(f"[name={name}]").fill(value)
        with page.expect_navigation():
            page.click("#individual-submit")
        expect(page.locator("#import-source")).to_contain_text("R8-指定-0777")
        expect(page.locator("#import-preview")).to_contain_text("新規発行")
        db.session.expire_all()
        assert db.session.query(User).count() == before
        with page.expect_navigation():
            page.click("#confirm-import")
        expect(page.locator("#batch-source")).to_contain_text("指定申請の受付番号: R8-指定-0777")
        expect(page.locator("#batch-users")).to_contain_text("個別 花子")
        with page.expect_download() as download_info:
            page.click("#download-notices")
        path = tmp_path / "notice.pdf"
        download_info.value.save_as(path)
        assert path.read_bytes().startswith(b"%PDF")
        db.session.expire_all()
        assert db.session.query(User).count() == before + 1
    finally:
        context.close()


def test_a_failed_confirmation_is_shown_as_failed_in_the_history_and_on_its_page(app, live_server, browser,
                                                                                 tmp_path):
    """A confirmation whose worker died (its batch left 取込中, moved past the stall time): the clerk sees 失敗 in the
    history and, on its page, that nothing was registered and what to do; at 1280 and 1024 px."""
    from datetime import timedelta

    from sqlalchemy import update

    from models._types import utcnow
    from models.accounts import ImportBatch
    from nanbyo import userfile
    from tests.browser.helpers import assert_fits
    keys = dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))
    clerk = db.session.execute(db.select(User).filter_by(login_id="muni-tokyo")).scalar_one()
    batch_id = userfile.begin_batch(clerk.municipality_id, filename="東京見本病院.xlsx", file_sha256="ab" * 32,
                                    institution_code="1310000017", actor=clerk)
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(
        created_at=utcnow() - userfile.BATCH_STALLED_AFTER - timedelta(seconds=1)))
    db.session.commit()
    context, page = _clerk_page(browser, live_server, keys)
    try:
        for width in (1280, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{live_server}/admin/user-import/")
            row = page.locator(f"tr.batch-failed:has(a[href$='/batch/{batch_id}'])")
            expect(row).to_contain_text("失敗")
            expect(row).to_contain_text("ファイル 東京見本病院.xlsx")
            assert_fits(page, tmp_path, f"user-import-history-{width}")
            row.get_by_role("link", name=str(batch_id)).click()
            expect(page.locator("#batch-status")).to_contain_text("この取込は失敗しました")
            expect(page.locator("#batch-status")).to_contain_text("同じファイルをもう一度アップロードして確定してください")
            expect(page.locator("#batch-users")).to_have_count(0)  # no empty list of accounts, no notices
            expect(page.locator("#download-notices")).to_have_count(0)
            assert_fits(page, tmp_path, f"user-import-failed-batch-{width}")
    finally:
        context.close()
