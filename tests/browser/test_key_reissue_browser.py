"""In Chromium: the 責任者 re-issues a doctor's key file (asked first), the doctor registers a new one with the
password and the code printed on the notice, then logs in with the new key file. At 1280 and 1024 px."""
import re
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

from nanbyo import auth
from nanbyo.extensions import db
from tests.helpers import PASSWORD, fresh, gen_institution, gen_user

pytestmark = pytest.mark.browser

PDFTOTEXT = shutil.which("pdftotext")


def _login(page, base, user, key_path=None, code=None):
    page.goto(f"{base}/login")
    page.fill("input[name=login_id]", user.login_id)
    page.fill("input[name=password]", PASSWORD)
    if key_path:
        page.set_input_files("input[name=key_file]", str(key_path))
    if code:
        page.get_by_text("鍵ファイルの再発行を受けた方").click()  # the section opens with the mouse
        page.get_by_label("鍵登録コード").fill(code)
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed")
@pytest.mark.parametrize("width", [1280, 1024])
def test_manager_reissues_and_the_doctor_registers_a_new_key(app, live_server, browser, tmp_path, width):
    hospital = gen_institution(name="東京見本病院")
    manager = gen_user("designated_doctor", institution=hospital, manager=True, name="見本 責任者")
    doctor = gen_user("designated_doctor", institution=hospital, name="見本 医師")
    for user in (manager, doctor):
        (tmp_path / f"{user.login_id}.key").write_bytes(user.key_file)
    context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900}, accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                  else route.abort())
    page = context.new_page()
    try:
        _login(page, live_server, manager, tmp_path / f"{manager.login_id}.key")
        page.goto(f"{live_server}/admin/institution-users/")
        row = page.locator("#institution-members tr", has_text=doctor.login_id)
        button = row.get_by_role("button", name="暗号化鍵再発行（通知書）")
        page.screenshot(path=str(tmp_path / f"institution-users-{width}.png"), full_page=True)

        dialogs = []
        page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        button.click()
        page.wait_for_timeout(300)
        assert dialogs and "暗号化鍵ファイルを再発行しますか" in dialogs[0] and doctor.name in dialogs[0]
        assert fresh(doctor).key_digest is not None, "dismissed: nothing happened"

        page.once("dialog", lambda d: d.accept())
        with page.expect_download() as download:
            button.click()
        pdf = tmp_path / "key-notice.pdf"
        download.value.save_as(pdf)
        text = subprocess.run([PDFTOTEXT, "-enc", "UTF-8", str(pdf), "-"], check=True,
                              capture_output=True).stdout.decode("utf-8")
        assert "暗号化鍵ファイル再発行通知書" in text and doctor.login_id in text
        code = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", text).group(0)

        other = context.browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900},
                                            accept_downloads=True)
        other.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server + "/")
                    else route.abort())
        doctor_page = other.new_page()
        # The old key file: refused with the one message for every failure.
        _login(doctor_page, live_server, doctor, tmp_path / f"{doctor.login_id}.key")
        expect(doctor_page.locator(".alert")).to_contain_text("ログインID、パスワードまたは鍵ファイルが正しくありません")
        _login(doctor_page, live_server, doctor, code=code.lower())
        doctor_page.screenshot(path=str(tmp_path / f"register-key-{width}.png"), full_page=True)
        expect(doctor_page.locator("h1")).to_have_text("暗号化鍵ファイルの登録（再発行）")
        with doctor_page.expect_download() as download:
            doctor_page.get_by_role("button", name="鍵ファイルを発行してダウンロード").click()
        new_key = tmp_path / "new.key"
        download.value.save_as(new_key)
        assert new_key.read_bytes().startswith(auth.KEY_FILE_MAGIC.encode())
        _login(doctor_page, live_server, doctor, new_key)
        assert "/login" not in doctor_page.url
        db.session.expire_all()
        assert fresh(doctor).key_code_hash is None
        other.close()
    finally:
        context.close()
