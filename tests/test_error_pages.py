"""Error pages: Japanese, inside the plain layout, with the way home; security headers kept, nothing leaked; the 500
page rolls the failed operation back before it is rendered."""
import re
from datetime import datetime
from io import BytesIO

import pytest
from flask import Blueprint, abort, flash, request

from models.accounts import User
from nanbyo import database
from nanbyo.exports import JST
from nanbyo.extensions import db
from tests.helpers import PASSWORD, csrf_token, fresh, gen_user, log_entries, login

ENGLISH = ("Not Found", "Bad Request", "Method Not Allowed", "Request Entity Too Large", "Content Too Large",
           "Internal Server Error", "Forbidden", "Traceback", "The CSRF", "CSRF token", "werkzeug", "Werkzeug")
CSRF_MESSAGE = ("画面を開いてから時間がたったか、別の画面でログアウト・ログインしたため、この操作を受け付けられませんでした。\n"
                "画面を読み込み直してからもう一度操作してください。")


def body(response):
    return response.get_data(as_text=True)


def link(response, element_id):
    match = re.search(rf'href="([^"]*)" id="{element_id}"', body(response))
    assert match, f"no #{element_id} in the page"
    return match.group(1).replace("&amp;", "&")


def check_page(response, status, heading):
    """The status, the Japanese heading inside the normal layout, no English, and the security headers."""
    assert response.status_code == status
    page = body(response)
    assert '<html lang="ja">' in page and "難病・小慢データベース" in page
    assert f'<h1 class="h4 mb-3" id="error-heading">{heading}</h1>' in page
    for english in ENGLISH:
        assert english not in page, english
    h = response.headers
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert "no-store" in h["Cache-Control"]
    return page


def log_in(client, role="municipality_admin"):
    user = gen_user(role)
    assert login(client, user).status_code == 302
    return user


# --- 404, 405, 403: the way home depends on who asks -------------------------------------------------------------------

def test_404_anonymous_leads_to_the_login_page(client):
    response = client.get("/no-such-page/<script>")
    page = check_page(response, 404, "ページが見つかりません")
    assert "お探しの画面またはデータは見つかりませんでした。" in page
    assert link(response, "home-link") == "/login" and "ログイン画面へ" in page
    assert "<script>" not in page and "no-such-page" not in page  # the path is not echoed


def test_404_logged_in_leads_home(client):
    log_in(client)
    response = client.get("/admin/no-such-screen/")
    page = check_page(response, 404, "ページが見つかりません")
    assert link(response, "home-link") == "/admin/" and "ホームへ戻る" in page


def test_405_says_so_and_keeps_the_allow_header(client):
    log_in(client)
    response = client.get("/logout")
    page = check_page(response, 405, "この方法では操作できません")
    assert "POST" in response.headers["Allow"]
    assert link(response, "home-link") == "/admin/"
    assert "ホームから" in page


def test_403_is_japanese_and_still_logged(client):
    user = log_in(client, "designated_doctor")
    response = client.get("/admin/operation_log/")
    page = check_page(response, 403, "アクセスできません")
    assert "この画面またはデータを利用する権限がありません。" in page
    assert link(response, "home-link") == "/admin/"
    denied = log_entries("access_denied")
    assert len(denied) == 1 and denied[0].actor_id == user.id and denied[0].result == "denied"
    assert denied[0].data["path"] == "/admin/operation_log/"


# --- CSRF: say why, offer the reload ----------------------------------------------------------------------------------

def test_csrf_failure_on_the_login_form_offers_a_reload(client):
    user = gen_user("municipality_user")
    client.get("/login")
    response = client.post("/login", data={"login_id": user.login_id, "password": PASSWORD},
                           headers={"Referer": "http://localhost/login?next=/admin/user/"})
    page = check_page(response, 400, "この操作を受け付けられませんでした")
    assert CSRF_MESSAGE in page
    assert link(response, "reload-link") == "/login?next=/admin/user/"
    assert link(response, "home-link") == "/login"
    assert fresh(user).failed_logins == 0


def test_csrf_failure_logged_in_goes_back_to_the_same_site_page(client):
    log_in(client, "operator_admin")
    victim = gen_user("municipality_user")
    data = {"action": "disable", "rowid": str(victim.id), "csrf_token": "expired-or-foreign-token"}
    response = client.post("/admin/user/action/", data=data, headers={"Referer": "http://localhost/admin/user/?page=1"})
    check_page(response, 400, "この操作を受け付けられませんでした")
    assert link(response, "reload-link") == "/admin/user/?page=1"
    assert link(response, "home-link") == "/admin/"
    assert fresh(victim).status == "active"


@pytest.mark.parametrize("referer", [None, "https://evil.example/admin/user/", "http://localhost.evil.example/x",
                                     "javascript:alert(1)", "http://localhost//evil.example/", "not a url"])
def test_csrf_reload_link_never_leaves_the_site(client, referer):
    log_in(client, "operator_admin")
    headers = {"Referer": referer} if referer else {}
    response = client.post("/admin/user/action/", data={"action": "disable", "rowid": "1"}, headers=headers)
    check_page(response, 400, "この操作を受け付けられませんでした")
    assert link(response, "reload-link") == "/admin/"


# --- 413: the file is too large, and the limit --------------------------------------------------------------------------

def test_413_names_the_limit_in_megabytes(app, client):
    assert app.config["MAX_CONTENT_LENGTH"] == 32 * 1024 * 1024
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    user = gen_user("municipality_admin")
    data = {"login_id": user.login_id, "password": PASSWORD, "csrf_token": csrf_token(client),
            "key_file": (BytesIO(b"x" * (3 * 1024 * 1024)), "huge.key")}
    response = client.post("/login", data=data, content_type="multipart/form-data",
                           headers={"Referer": "http://localhost/login"})
    page = check_page(response, 413, "ファイルが大きすぎます")
    assert "送信したファイルが大きすぎるため、受け付けられませんでした。" in page
    assert "一度に送信できるのは合計 2 MB までです。" in page
    assert link(response, "back-link") == "/login"


# --- test-only routes: 400 from a view, 500, other codes -------------------------------------------------------------

@pytest.fixture
def failing(app):
    """Routes that fail, registered before the app's first request; exceptions reach the 500 handler as in
    production (TESTING propagates them otherwise). Records what the template context saw of the unit of work."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    bp = Blueprint("failing", __name__)
    seen = []

    @bp.route("/_test/boom/<int:user_id>")
    def boom(user_id):
        if request.args.get("flash"):
            flash("保存しました。", "success")  # said before the failure: false now
        database.begin_write()
        user = db.session.get(User, user_id)
        user.name = "保存されてはいけない名前"
        db.session.flush()
        raise RuntimeError("secret-detail-of-the-failure /srv/nanbyo/password=hunter2")

    @bp.route("/_test/abort/<int:code>")
    def aborting(code):
        abort(code)

    @app.context_processor
    def probe():
        if request.path.startswith("/_test/boom"):
            seen.append({"locked": database.is_write_locked(db.session), "changes": database.has_changes(db.session)})
        return {}

    app.register_blueprint(bp)
    return seen


def test_500_apologises_rolls_back_and_tells_the_time(app, client, failing):
    user = log_in(client)
    before = datetime.now(JST).replace(microsecond=0)
    response = client.get(f"/_test/boom/{user.id}")
    after = datetime.now(JST)
    page = check_page(response, 500, "システムエラーが発生しました")
    assert "申し訳ありません。" in page and "この操作による変更は保存されていません。" in page
    for secret in ("secret-detail", "RuntimeError", "/srv/nanbyo", "hunter2", "保存されてはいけない名前"):
        assert secret not in page
    shown = re.search(r"<dt[^>]*>発生日時（日本時間）</dt><dd[^>]*>([^<]+)</dd>", page).group(1)
    assert before <= datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST) <= after
    assert re.search(r"<dt[^>]*>エラー番号</dt><dd[^>]*>[0-9A-F]{8}</dd>", page)
    assert link(response, "home-link") == "/admin/"
    # Rolled back before the page was rendered: no lock held, nothing pending; and nothing was saved.
    assert failing == [{"locked": False, "changes": False}]
    assert fresh(user).name != "保存されてはいけない名前"
    # The write lock is free again: the next operation works.
    assert login(app.test_client(), gen_user("municipality_user")).status_code == 302


def test_500_for_an_anonymous_user_leads_to_the_login_page(client, failing):
    user = gen_user("municipality_user")
    response = client.get(f"/_test/boom/{user.id}")
    check_page(response, 500, "システムエラーが発生しました")
    assert link(response, "home-link") == "/login"
    assert fresh(user).name != "保存されてはいけない名前"


def test_500_drops_the_messages_of_the_failed_request(app, client, failing):
    log_in(client)
    user = gen_user("municipality_user")
    response = client.get(f"/_test/boom/{user.id}?flash=1")
    assert response.status_code == 500
    assert "保存しました。" not in body(response)
    assert "保存しました。" not in body(client.get("/admin/"))


def test_400_from_a_view_is_japanese(client, failing):
    log_in(client)
    response = client.get("/_test/abort/400", headers={"Referer": "http://localhost/admin/document/"})
    page = check_page(response, 400, "この操作を受け付けられませんでした")
    assert "送信された内容を処理できなかったため" in page
    assert link(response, "back-link") == "/admin/document/"


@pytest.mark.parametrize("code", [401, 429, 501, 503])
def test_other_error_codes_get_a_japanese_page(client, failing, code):
    response = client.get(f"/_test/abort/{code}")
    page = check_page(response, code, "この操作を完了できませんでした")
    assert f"エラー {code}" in page
    assert link(response, "home-link") == "/login"


def test_error_pages_of_every_code_are_japanese(client, failing):
    log_in(client)
    headings = {400: "この操作を受け付けられませんでした", 403: "アクセスできません", 404: "ページが見つかりません",
                405: "この方法では操作できません", 413: "ファイルが大きすぎます", 500: "システムエラーが発生しました"}
    for code, heading in headings.items():
        response = client.get(f"/_test/abort/{code}")
        check_page(response, code, heading)
        assert link(response, "home-link") == "/admin/"
