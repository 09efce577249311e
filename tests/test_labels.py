"""Labels, not internal values, where a person reads: the operation log (list, details, export), times in Japan time,
and the exports of users, memberships and municipalities (labels, with the codes in columns of their own)."""
import csv
import html
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from models.audit import OperationLog
from nanbyo import audit
from nanbyo.extensions import db
from tests.helpers import gen_institution, gen_municipality, gen_user, login

ROOT = Path(__file__).resolve().parent.parent
WRONG_PASSWORD = "Wrong-Guess-Pw-4821"


def cells(page, column):
    """The visible text of every list cell of `column` (Flask-Admin: <td class="col-<column>">)."""
    found = re.findall(rf'<td class="col-{column}">(.*?)</td>', page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<br>", " | ", c))).strip() for c in found]


def table_text(page):
    """Everything a person reads in the list table (cells only: filter definitions in scripts carry codes)."""
    return "\n".join(html.unescape(c) for c in re.findall(r'<td class="col-[\w.]+">(.*?)</td>', page, re.S))


def export_rows(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))


def as_dicts(rows):
    return [dict(zip(rows[0], row)) for row in rows[1:]]


# --- the operation log list ----------------------------------------------------------------------------------------

@pytest.fixture
def logged(app, client):
    """An operator admin, logged in after a failed attempt, and entries of every result and of unknown keys."""
    operator = gen_user("operator_admin")
    login(client, operator, password=WRONG_PASSWORD)
    assert login(client, operator).status_code == 302
    audit.record("update", target_type="user_account", target_id=str(operator.id),
                 data={"fields": ["email", "name"], "self": True})
    audit.record("key_lookup", target_type="document", result="throttled")
    audit.record("key_lookup", target_type="document", result="failure", data={"reason": "not_found"})
    audit.record("document_review", target_type="document", target_id="7", result="conflict")
    audit.record("access_denied", result="denied", data={"endpoint": "user.index_view", "method": "GET",
                                                         "path": "/admin/user/"})
    audit.record("key_reset", target_type="user_account", target_id="3",
                 data={"expires_at": "2026-11-25T05:03:27.123456+00:00"})
    audit.record("create", target_type="membership", target_id="4", data={"kind": "concurrent", "by_manager": True})
    audit.record("document_list", target_type="document", data={"ids": list(range(1, 31))})
    audit.record("update", target_type="widget", target_id="5", data={"mystery_key": "mystery-value"})
    return operator


def test_log_list_shows_labels_not_codes(client, logged):
    page = client.get("/admin/operation_log/").get_data(as_text=True)
    text = table_text(page)
    targets, results, actions = cells(page, "target_type"), cells(page, "result"), cells(page, "action")
    assert {"ユーザ", "書類", "医療機関への所属"} <= set(targets)
    assert {"成功", "失敗", "拒否", "回数制限", "競合"} <= set(results)
    assert {"ログイン失敗", "ログイン", "暗号化鍵再発行", "書類一覧の表示", "アクセス拒否"} <= set(actions)
    for raw in ("user_account", "membership", "success", "failure", "denied", "throttled", "conflict", "login_failed",
                "key_reset", "document_list", '{"fields"', "{&#34;fields", "bad_password", "not_found",
                "concurrent", "operator_admin", "+00:00", "+09:00"):
        assert raw not in text, raw


def test_log_details_are_readable_japanese(client, logged):
    page = client.get("/admin/operation_log/").get_data(as_text=True)
    details = cells(page, "data")
    assert "入力されたログインID: {} | 理由: パスワード誤り".format(logged.login_id) in details
    assert "変更した項目: メールアドレス、氏名 | 本人" in details  # the user screen's own labels
    assert "理由: 該当なし" in details
    assert "有効期限: 2026-11-25 14:03" in details  # the ISO time of the entry, in Japan time
    assert "種別: 兼務先 | 責任者による" in details
    assert "書類ID: 1、2、3、4、5、6、7、8、9、10、11、12、13、14、15、16、17、18、19、20 ほか10件" in details
    # A key no label knows is shown as it is, not dropped; so is an unknown target.
    assert "mystery_key: mystery-value" in details
    assert "widget" in cells(page, "target_type")


def test_log_times_are_japan_time_without_offset(client, logged):
    page = client.get("/admin/operation_log/").get_data(as_text=True)
    times = cells(page, "created_at")
    assert times and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", t) for t in times), times


def test_log_details_page_uses_labels(client, logged):
    entry = db.session.execute(db.select(OperationLog).filter_by(action="login_failed")).scalar_one()
    page = html.unescape(client.get(f"/admin/operation_log/details/?id={entry.id}").get_data(as_text=True))
    assert "ログイン失敗" in page and "理由: パスワード誤り" in page and "失敗" in page
    assert "bad_password" not in page and '"reason"' not in page


def test_log_export_has_labels_and_the_codes_for_machines(client, logged):
    rows = export_rows(client, "/admin/operation_log/export/csv/")
    header = rows[0]
    assert header[:10] == ["番号", "日時（JST）", "ログインID", "ロール", "接続元", "操作", "対象", "対象ID", "結果", "詳細"]
    assert {"操作コード", "対象コード", "結果コード", "ロールコード", "詳細（JSON）"} <= set(header)
    failed = next(r for r in as_dicts(rows) if r["操作コード"] == "login_failed")
    assert (failed["操作"], failed["対象"], failed["結果"], failed["ロール"]) == (
        "ログイン失敗", "ユーザ", "失敗", "システム運営主体 管理者")
    assert (failed["対象コード"], failed["結果コード"], failed["ロールコード"]) == (
        "user_account", "failure", "operator_admin")
    assert failed["詳細"] == f"入力されたログインID: {logged.login_id} ／ 理由: パスワード誤り"
    assert '"reason": "bad_password"' in failed["詳細（JSON）"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", failed["日時（JST）"])


def test_log_filters_offer_labels(app, client, logged):
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "operation_log")
    options = {f.name: dict(f.options) for f in view._filters if f.options}
    assert options["結果"]["throttled"] == "回数制限"
    assert options["対象"]["user_account"] == "ユーザ"
    assert options["操作"]["key_reset"] == "暗号化鍵再発行"
    # And filtering by a label's code works.
    index = next(i for i, f in enumerate(view._filters) if f.name == "結果" and type(f).__name__ == "FilterEqual")
    page = client.get(f"/admin/operation_log/?flt0_{index}=throttled").get_data(as_text=True)
    assert set(cells(page, "result")) == {"回数制限"}


# --- every code written has a label ----------------------------------------------------------------------------------

def _sources():
    return [p for folder in ("nanbyo", "views") for p in (ROOT / folder).glob("*.py")]


def test_every_logged_action_has_a_label():
    actions = set()
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        actions |= set(re.findall(r'audit\.record\(\s*"(\w+)"', source))
        actions |= set(re.findall(r'audit\.record\(\s*"(\w+)" if', source))
        actions |= set(re.findall(r'audit\.record\(\s*"\w+" if [^"]+ else "(\w+)"', source))
        actions |= set(re.findall(r'_apply\(ids, "\w+", "(\w+)"', source))  # views/users.py: unlock, disable, …
        actions |= set(re.findall(r'dict\(action="(\w+)"', source))  # the entries of audit.record_many([...])
    assert {"login", "document_list", "document_receive", "key_reset", "unlock", "disable", "enable"} <= actions
    missing = sorted(a for a in actions if a not in audit.ACTION_LABELS)
    assert not missing, f"actions without a Japanese label in ACTION_LABELS: {missing}"
    assert audit.ACTION_LABELS["key_reset"] == "暗号化鍵再発行"


def test_every_target_type_has_a_label():
    targets = set(db.metadata.tables) - {"alembic_version"}
    for path in _sources():
        targets |= set(re.findall(r'target_type="(\w+)"', path.read_text(encoding="utf-8")))
    missing = sorted(t for t in targets if t not in audit.TARGET_LABELS)
    assert not missing, f"target types without a label in TARGET_LABELS: {missing}"


def test_every_login_failure_reason_has_a_label():
    from nanbyo.roles import STATUS_LABELS
    auth_source = (ROOT / "nanbyo" / "auth.py").read_text(encoding="utf-8")
    reasons = set(re.findall(r'"(bad_\w+|no_key_file|unknown_login_id)"', auth_source))
    reasons |= set(STATUS_LABELS) - {"active"}
    documents_source = (ROOT / "nanbyo" / "documents.py").read_text(encoding="utf-8")
    reasons |= set(re.findall(r'"reason": "(\w+)"', documents_source))
    assert {"bad_password", "bad_key_file", "bad_key_code", "no_key_file", "format", "not_found"} <= reasons
    missing = sorted(r for r in reasons if r not in audit.REASON_LABELS)
    assert not missing, missing


# --- times on the user screens ---------------------------------------------------------------------------------------

def test_user_list_and_details_show_japan_time_to_the_minute(client):
    operator = gen_user("operator_admin")
    doctor = gen_user("designated_doctor", institution=gen_institution())
    doctor.last_login_at = datetime(2026, 11, 25, 5, 3, 27, 123456, tzinfo=timezone.utc)
    doctor.created_at = datetime(2026, 4, 1, 0, 30, 0, tzinfo=timezone.utc)
    doctor.key_issued_at = datetime(2026, 4, 2, 23, 59, 59, tzinfo=timezone.utc)
    db.session.commit()
    assert login(client, operator).status_code == 302
    page = client.get("/admin/user/").get_data(as_text=True)
    assert "2026-11-25 14:03" in cells(page, "last_login_at")
    # The doctor's cell: the operator's own last login is now, which may show any minute (05:03 included).
    shown = next(cell for cell in cells(page, "last_login_at") if cell.startswith("2026-11-25"))
    for wrong in ("05:03", "14:03:27", "123456", "+00:00", "+09:00", "UTC", "T14"):
        assert wrong not in shown, wrong
    details = html.unescape(client.get(f"/admin/user/details/?id={doctor.id}").get_data(as_text=True))
    assert "2026-11-25 14:03" in details  # 最終ログイン
    assert "2026-04-01 09:30" in details  # 登録日時
    assert "2026-04-03 08:59" in details  # 鍵ファイル発行日時
    assert "123456" not in details and "+00:00" not in details and "05:03:27" not in details


# --- exports -----------------------------------------------------------------------------------------------------------

def test_user_export_has_labels_and_codes(client):
    operator = gen_user("operator_admin")
    doctor = gen_user("designated_doctor", "export-doctor", institution=gen_institution(),
                      designations=("nanbyo", "shoman"))
    doctor.status = "locked"
    db.session.commit()
    login(client, operator)
    rows = export_rows(client, "/admin/user/export/csv/")
    assert rows[0][:9] == ["ログインID", "氏名", "氏名カナ", "メールアドレス", "ロール", "状態", "所属自治体", "発行自治体",
                           "指定医の指定"]
    assert rows[0][9:] == ["ロールコード", "状態コード", "指定医区分コード"]
    row = next(r for r in as_dicts(rows) if r["ログインID"] == "export-doctor")
    assert (row["ロール"], row["状態"], row["発行自治体"]) == ("指定医", "ロック中", "東京都")
    assert row["指定医の指定"].startswith("難病指定医 ") and "小慢指定医 " in row["指定医の指定"]
    assert (row["ロールコード"], row["状態コード"], row["指定医区分コード"]) == ("designated_doctor", "locked",
                                                                          "nanbyo,shoman")
    admin_row = next(r for r in as_dicts(rows) if r["ログインID"] == operator.login_id)
    assert (admin_row["ロール"], admin_row["状態"], admin_row["ロールコード"]) == (
        "システム運営主体 管理者", "有効", "operator_admin")


def test_membership_export_has_labels_and_codes(client):
    operator = gen_user("operator_admin")
    inst = gen_institution()
    manager = gen_user("designated_doctor", "export-manager", institution=inst, manager=True)
    gen_user("designated_doctor", "export-concurrent", institution=inst, kind="concurrent")
    login(client, operator)
    rows = export_rows(client, "/admin/membership/export/csv/")
    assert rows[0] == ["ログインID", "医療機関コード", "種別", "責任者", "部署（部門/診療科）", "種別コード"]
    by_login = {r["ログインID"]: r for r in as_dicts(rows)}
    assert (by_login[manager.login_id]["種別"], by_login[manager.login_id]["責任者"],
            by_login[manager.login_id]["種別コード"]) == ("主たる勤務先", "はい", "primary")
    assert (by_login["export-concurrent"]["種別"], by_login["export-concurrent"]["責任者"],
            by_login["export-concurrent"]["種別コード"]) == ("兼務先", "いいえ", "concurrent")


def test_municipality_export_has_labels_and_codes(client):
    login(client, gen_user("operator_admin"))
    rows = export_rows(client, "/admin/municipality/export/csv/")
    assert rows[0] == ["全国地方公共団体コード", "名称", "都道府県番号", "種別", "種別コード"]
    tokyo = next(r for r in as_dicts(rows) if r["全国地方公共団体コード"] == gen_municipality().code)
    assert (tokyo["名称"], tokyo["種別"], tokyo["種別コード"]) == ("東京都", "都道府県", "prefecture")


def test_institution_export_says_yes_or_no(client):
    login(client, gen_user("operator_admin"))
    gen_institution(code="1310000017")
    rows = as_dicts(export_rows(client, "/admin/institution/export/csv/"))
    assert next(r for r in rows if r["医療機関コード"] == "1310000017")["有効"] == "はい"
