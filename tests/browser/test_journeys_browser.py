"""In Chromium, at 1280 and 1024 px: a journey per role, asserting what the person sees.

- the 自治体 clerk (admin) issues doctors' IDs from the home page; the 自治体 clerk (user) looks a key up and
  receives the document, asked first;
- the 責任者 registers a staff member and resets a doctor's password, asked first, in one screen;
- the operator reads the operation log in Japanese.
The document writing journey of a doctor is tests/browser/test_documents_browser.py.
"""
import pytest
from playwright.sync_api import expect

from models.accounts import User
from models.documents import Document
from nanbyo.demo import create_demo
from nanbyo.extensions import db
from tests.browser.helpers import DEMO_PASSWORD, assert_fits, log_in
from tests.userfile_helpers import doctor_row, xlsx_bytes

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("width", [1280, 1024])]


@pytest.fixture
def demo(app, tmp_path):
    return dict(create_demo(tmp_path / "demo-keys", DEMO_PASSWORD))


@pytest.fixture
def open_page(browser, live_server):
    contexts = []

    def opened(width):
        context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900}, accept_downloads=True)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                      else route.abort())
        contexts.append(context)
        return context.new_page()

    yield opened
    for context in contexts:
        context.close()


def test_clerk_issues_ids_from_the_home_page(live_server, demo, open_page, tmp_path, width):
    page = open_page(width)
    log_in(page, live_server, "muni-tokyo", demo["muni-tokyo"], DEMO_PASSWORD)
    assert_fits(page, tmp_path, f"clerk-home-{width}")
    with page.expect_navigation():
        page.click("#home-user-import")
    upload = tmp_path / "東京見本病院.xlsx"
    upload.write_bytes(xlsx_bytes([doctor_row(201, 指定医番号="13-N-0201")]))
    page.set_input_files("input[name=file]", str(upload))
    with page.expect_navigation():
        page.click("#upload")
    expect(page.locator("#import-preview")).to_contain_text("新規発行")
    with page.expect_navigation():
        page.click("#confirm-import")
    expect(page.locator(".alert-success")).to_contain_text("新規発行 1 件")
    expect(page.locator("#batch-users")).to_contain_text("見本 医師201")
    assert_fits(page, tmp_path, f"clerk-batch-{width}")


def test_clerk_looks_a_key_up_and_receives_the_document(live_server, demo, open_page, tmp_path, width):
    db.session.expire_all()
    doc = db.session.execute(db.select(Document).filter_by(status="finalized").order_by(Document.id)).scalars().first()
    page = open_page(width)
    # The demo's muni-tokyo admin does the 審査 too (review is both clerks' work).
    log_in(page, live_server, "muni-tokyo", demo["muni-tokyo"], DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("#home-key-lookup")
    page.fill("input[name=access_key]", doc.access_key)
    with page.expect_navigation():
        page.click("#lookup-submit")
    expect(page.locator("h2")).to_contain_text("照会・未受付")
    assert_fits(page, tmp_path, f"lookup-{width}")
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    with page.expect_navigation():
        page.click("#receive-document")
    assert "受付しますか" in dialogs[0]
    expect(page.locator(".alert-success")).to_contain_text("受付しました（受付番号")
    expect(page.locator("#document-header")).to_contain_text("受付")
    # The document list: ✎ and 🗑 are not offered on documents that cannot be changed by this clerk.
    page.goto(f"{live_server}/admin/document/")
    expect(page.locator("table.model-list")).to_be_visible()
    expect(page.locator("table.model-list .fa-trash, table.model-list .fa-pencil")).to_have_count(0)
    assert_fits(page, tmp_path, f"clerk-documents-{width}")


def test_manager_registers_staff_and_resets_a_password_in_one_screen(live_server, demo, open_page, tmp_path, width):
    page = open_page(width)
    log_in(page, live_server, "manager", demo["manager"], DEMO_PASSWORD)
    # One screen for the institution's users: no separate user list in the menu.
    expect(page.locator("nav.navbar")).not_to_contain_text("医療機関への所属")
    with page.expect_navigation():
        page.click("#home-institution-users")
    assert_fits(page, tmp_path, f"manager-{width}")
    form = page.locator("form", has=page.locator("input[name=name_kana]"))
    form.locator("input[name=name]").fill("受付 花子")
    form.locator("input[name=name_kana]").fill("ウケツケ ハナコ")
    with page.expect_navigation():
        form.get_by_role("button", name="登録").click()
    expect(page.locator(".alert-success")).to_contain_text("一般ユーザ 受付 花子")
    row = page.locator("#institution-members tr", has_text="見本 医師")
    reset = row.get_by_role("button", name="発行通知書（パスワード再設定）")
    db.session.expire_all()
    before = db.session.execute(db.select(User.password_hash).filter_by(login_id="doctor")).scalar_one()
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    reset.click()
    page.wait_for_timeout(300)
    assert "パスワードを新しい初期パスワードに再設定" in dialogs[0]
    db.session.expire_all()
    assert db.session.execute(db.select(User.password_hash).filter_by(login_id="doctor")).scalar_one() == before
    page.once("dialog", lambda d: d.accept())
    with page.expect_download() as download:
        reset.click()
    assert download.value.suggested_filename.endswith(".pdf")
    db.session.expire_all()
    assert db.session.execute(db.select(User.password_hash).filter_by(login_id="doctor")).scalar_one() != before


def test_operator_reads_the_log_in_japanese(live_server, demo, open_page, tmp_path, width):
    page = open_page(width)
    log_in(page, live_server, "operator", demo["operator"], DEMO_PASSWORD)
    assert_fits(page, tmp_path, f"operator-home-{width}")
    page.goto(f"{live_server}/admin/operation_log/")
    table = page.locator("table.model-list")
    expect(table).to_contain_text("ログイン")
    expect(table).to_contain_text("成功")
    for raw in ("user_account", "success", '{"'):
        expect(table).not_to_contain_text(raw)
    assert_fits(page, tmp_path, f"operator-log-{width}")


def test_new_doctor_sets_up_and_logs_in_with_the_key_file(app, live_server, open_page, tmp_path, width):
    """A newly issued doctor: the notice's password, a new password and e-mail, the key file downloaded once (the
    button gives way to what to do next), then the login with the key file."""
    from tests.helpers import PASSWORD as NOTICE_PASSWORD, gen_institution, gen_municipality, gen_user
    municipality = gen_municipality()
    doctor = gen_user("designated_doctor", institution=gen_institution(municipality), setup_done=False)
    new_password = "Shin-Kiroku-Pw-2026"
    page = open_page(width)
    page.goto(f"{live_server}/login")
    page.fill("input[name=login_id]", doctor.login_id)
    page.fill("input[name=password]", NOTICE_PASSWORD)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("初回ログイン")
    page.fill("input[name=new_password]", new_password)
    page.fill("input[name=new_password_confirm]", new_password)
    page.fill("input[name=email]", "shinki@example.jp")
    with page.expect_navigation():
        page.click("form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("暗号化鍵ファイルの登録")
    with page.expect_download() as download:
        page.click("#download-key")
    key_path = tmp_path / f"{doctor.login_id}-{width}.key"
    download.value.save_as(str(key_path))
    # The session ended with the download: no second press, but what to do now.
    expect(page.locator("#download-key")).to_be_hidden()
    expect(page.locator("#key-downloaded")).to_contain_text("改めてログインしてください")
    assert_fits(page, tmp_path, f"first-login-key-{width}")
    with page.expect_navigation():
        page.click("#to-login")
    page.fill("input[name=login_id]", doctor.login_id)
    page.fill("input[name=password]", new_password)
    page.set_input_files("input[name=key_file]", str(key_path))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert page.url.endswith("/admin/")
    expect(page.locator("#home-new-document")).to_be_visible()
    assert_fits(page, tmp_path, f"doctor-home-{width}")
