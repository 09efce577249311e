"""Accounts and memberships, for the operator, the municipality admin and the institution's 責任者."""
from flask import Response, flash
from flask_admin.actions import action
from flask_login import current_user
from sqlalchemy import String, cast, select
from wtforms import SelectField
from wtforms.validators import ValidationError

from models.accounts import Designation, Membership
from models._types import utcnow
from nanbyo import access, audit, auth, database, sessions
from nanbyo.exports import ExportColumn, coded, joined_text, jst_text
from nanbyo.extensions import db
from nanbyo.issuance import NotIssuable, issuer_label, reissue_keys, reset_for_notices
from nanbyo.userfile import unusable_password_hash
from nanbyo.roles import (DOCTOR_KIND_LABELS, DESIGNATED_DOCTOR, INSTITUTION_ROLES, MEMBERSHIP_KIND_LABELS,
                          MUNICIPALITY_ROLES, ROLE_LABELS, STATUS_ACTIVE, STATUS_DELETED, STATUS_DISABLED,
                          STATUS_LABELS, STATUS_LOCKED)
from views.base import ScopedModelView, label_formatter


def jst_formatter(attr):
    """A datetime column in Japan time to the minute: 2026-11-25 14:03."""
    return lambda v, c, m, n: jst_text(getattr(m, attr))


# A user's designations in one exported value: "id<US>kind<US>number" entries joined by <RS> (never in a code or
# a number), put in id order by _designation_list().
_UNIT, _RECORD = "\x1f", "\x1e"


def _designations(user_model):
    entry = cast(Designation.id, String) + _UNIT + Designation.kind + _UNIT + Designation.number
    return select(joined_text(entry, _RECORD)).where(Designation.user_id == user_model.id).scalar_subquery()


def _designation_list(joined):
    """[(kind, number)] in designation order (as User.designations), from _designations()' value."""
    entries = [entry.split(_UNIT) for entry in joined.split(_RECORD)] if joined else []
    return [(kind, number) for _id, kind, number in sorted(entries, key=lambda entry: int(entry[0]))]


class UserView(ScopedModelView):
    area = "users"
    column_list = ["login_id", "name", "role", "status", "municipality", "issuing_municipality", "designations",
                   "last_login_at"]
    column_details_list = ["login_id", "name", "name_kana", "email", "role", "status", "failed_logins",
                           "must_change_password", "key_issued_at", "municipality", "issuing_municipality",
                           "designations", "memberships", "created_at", "last_login_at"]
    # Labels as on screen; the codes (ロールコード, 状態コード, 指定医区分コード) in columns of their own for machines.
    column_export_list = ["login_id", "name", "name_kana", "email", "role", "status", "municipality.name",
                          "issuing_municipality.name", "designation_text", "role_code", "status_code",
                          "designation_codes"]
    column_labels = {
        "login_id": "ログインID", "name": "氏名", "name_kana": "氏名カナ", "email": "メールアドレス", "role": "ロール",
        "status": "状態", "failed_logins": "連続ログイン失敗回数", "must_change_password": "初期パスワード変更待ち",
        "key_issued_at": "鍵ファイル発行日時", "municipality": "所属自治体", "municipality.name": "所属自治体",
        "issuing_municipality": "発行自治体", "issuing_municipality.name": "発行自治体",
        "designations": "指定医の指定", "designation_text": "指定医の指定", "memberships": "所属医療機関",
        "created_at": "登録日時",
        "last_login_at": "最終ログイン",
        "role_code": "ロールコード", "status_code": "状態コード", "designation_codes": "指定医区分コード",
    }
    column_searchable_list = ["login_id", "name", "name_kana", "email"]
    column_filters = ["role", "status"]
    column_default_sort = "login_id"
    # ~100,000 doctors: no COUNT(*) with every page (a search would scan the accounts twice); previous/next only.
    simple_list_pager = True
    column_formatters = {"role": label_formatter(ROLE_LABELS, "role"),
                         "status": label_formatter(STATUS_LABELS, "status"),
                         "designations": lambda v, c, m, n: "、".join(str(d) for d in m.designations),
                         "last_login_at": jst_formatter("last_login_at"),
                         "created_at": jst_formatter("created_at"),
                         "key_issued_at": jst_formatter("key_issued_at")}
    form_columns = ["login_id", "name", "name_kana", "email", "role", "municipality", "issuing_municipality",
                    "designations"]
    form_overrides = {"role": SelectField}
    form_args = {"role": {"choices": list(ROLE_LABELS.items()), "label": "ロール"}}
    inline_models = [(Designation, {
        "form_columns": ["id", "kind", "number", "valid_from", "valid_until"],
        "form_overrides": {"kind": SelectField},
        "form_args": {"kind": {"choices": list(DOCTOR_KIND_LABELS.items()), "label": "指定医区分"}},
        "column_labels": {"number": "指定医番号", "valid_from": "指定期間（開始）", "valid_until": "指定期間（終了）"},
    })]
    action_permissions = {"unlock": "unlock", "disable": "disable", "enable": "disable", "key_reset": "key_reset",
                          "issue_notice": "notice"}
    export_columns = {
        "role": ExportColumn("role", format=coded(ROLE_LABELS)),
        "status": ExportColumn("status", format=coded(STATUS_LABELS)),
        "role_code": ExportColumn("role"), "status_code": ExportColumn("status"),
        "designation_text": ExportColumn(_designations, format=lambda joined: "、".join(
            f"{DOCTOR_KIND_LABELS.get(kind, kind)} {number}" for kind, number in _designation_list(joined))),
        "designation_codes": ExportColumn(_designations, format=lambda joined: ",".join(
            kind for kind, _number in _designation_list(joined))),
    }

    def _limit_roles(self, form):
        if "role" in form:
            allowed = access.assignable_roles(current_user)
            form.role.choices = [(r, ROLE_LABELS[r]) for r in allowed]
        return form

    def create_form(self, obj=None):
        return self._limit_roles(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._limit_roles(super().edit_form(obj))

    def on_model_change(self, form, model, is_created):
        if "municipality" not in form:
            # Outside the operator, the account belongs to (or is issued by) the admin's own 自治体.
            own = current_user.municipality_id
            model.municipality_id = own if model.role in MUNICIPALITY_ROLES else None
            if model.role in INSTITUTION_ROLES and (is_created or model.issuing_municipality_id is None):
                model.issuing_municipality_id = own
        if model.role in MUNICIPALITY_ROLES and not (model.municipality_id or model.municipality):
            raise ValidationError("自治体のユーザには所属自治体が必要です。")
        if model.role in INSTITUTION_ROLES and not (model.issuing_municipality_id or model.issuing_municipality):
            raise ValidationError("医療機関のユーザには発行自治体が必要です。")
        if model.role == DESIGNATED_DOCTOR and not model.designations:
            raise ValidationError("指定医には指定医区分（指定）が1つ以上必要です。")
        if model.role != DESIGNATED_DOCTOR and model.designations:
            raise ValidationError("指定医以外のユーザに指定医の指定は登録できません。")
        if is_created:
            # Nobody knows this password: the 発行通知書 action sets the one the user receives.
            model.password_hash = unusable_password_hash()
            model.must_change_password = True
            model.status = STATUS_ACTIVE
            model.failed_logins = 0
            flash(f"{model.login_id} を登録しました。一覧で選択して「発行通知書」を出力し、本人に送付してください。", "info")
        super().on_model_change(form, model, is_created)

    def delete_problem(self, model):
        if model.role not in INSTITUTION_ROLES:
            return super().delete_problem(model)  # refused while documents refer to the account
        if model.is_manager:
            return "責任者になっている指定医は削除できません。先に責任者を交代してください。"
        return None

    def remove_model(self, model):
        """Doctors and institution staff are deleted by their issuer but kept, so the history of what they wrote
        stays readable; the ID then no longer logs in, belongs nowhere, and may be issued again elsewhere."""
        if model.role not in INSTITUTION_ROLES:
            return super().remove_model(model)
        model.status = STATUS_DELETED
        model.deleted_at = utcnow()
        model.key_digest = None
        model.key_code_hash = None
        for membership in list(model.memberships):
            db.session.delete(membership)
        sessions.revoke_all(model)
        audit.record("delete", target=model)
        return True

    def on_model_delete(self, model):
        sessions.revoke_all(model)
        super().on_model_delete(model)

    def _apply(self, ids, purpose, log_action, change, done_message):
        """One unit of work: the rows as they are under the lock, each change with its log entry."""
        database.begin_write()
        done = 0
        for user in self.rows_for_action(ids, purpose):
            if change(user):
                audit.record(log_action, target=user, commit=False)
                done += 1
        db.session.commit()
        flash(done_message.format(count=done), "success" if done else "error")

    def _notices(self, ids, issue, filename):
        """The notice PDF `issue(users)` makes for the selected accounts this user supports, or a message."""
        users = self.rows_for_action(ids, "support")
        if not users:
            flash("対象のアカウントがありません（無効・削除済みのアカウントや、権限の範囲外のアカウントには発行できません）。",
                  "error")
            return None
        try:
            pdf = issue(users)
        except NotIssuable as e:
            flash(str(e), "error")
            return None
        return Response(pdf, mimetype="application/pdf",
                        headers={"Content-Disposition": f"attachment; filename={filename}"})

    @action("issue_notice", "発行通知書",
            "選択したアカウントの初期パスワードを新しく設定し、ID・PW発行通知書（PDF）を出力しますか？"
            "以前の通知書のパスワードは使えなくなり、ログイン中の画面も終了します。")
    def action_issue_notice(self, ids):
        return self._notices(ids, lambda users: reset_for_notices(users, issuer_label(current_user)), "notices.pdf")

    @action("unlock", "ロック解除", "選択したアカウントのロックを解除しますか？（無効・削除済みのアカウントは変わりません）")
    def action_unlock(self, ids):
        self._apply(ids, "support", "unlock", auth.unlock, "{count}件のロックを解除しました。")

    @action("key_reset", "暗号化鍵再発行（通知書）",
            "選択したアカウントの暗号化鍵ファイルを失効させ、再発行通知書（PDF、鍵登録コード付き）を出力しますか？"
            "今の鍵ファイルは使えなくなり、ログイン中の画面も終了します。")
    def action_key_reset(self, ids):
        return self._notices(ids, lambda users: reissue_keys(users, issuer_label(current_user)), "key_notices.pdf")

    @action("disable", "無効化", "選択したアカウントを無効にしますか？ログイン中のセッションも終了します。")
    def action_disable(self, ids):
        def disable(user):
            if user.status not in (STATUS_ACTIVE, STATUS_LOCKED):
                return False
            user.status = STATUS_DISABLED
            sessions.revoke_all(user)
            return True
        self._apply(ids, "write", "disable", disable, "{count}件を無効にしました。")

    @action("enable", "有効化", "選択したアカウントを有効にしますか？")
    def action_enable(self, ids):
        self._apply(ids, "write", "enable", auth.enable, "{count}件を有効にしました。")


class MembershipView(ScopedModelView):
    area = "memberships"
    column_list = ["user", "institution", "kind", "is_manager", "department"]
    column_labels = {"user": "ユーザ", "institution": "医療機関", "kind": "種別", "is_manager": "責任者",
                     "department": "部署（部門/診療科）", "user.login_id": "ログインID", "institution.code": "医療機関コード",
                     "kind_code": "種別コード"}
    column_export_list = ["user.login_id", "institution.code", "kind", "is_manager", "department", "kind_code"]
    column_formatters = {"kind": label_formatter(MEMBERSHIP_KIND_LABELS, "kind")}
    # 責任者: はい / いいえ (exports.cell_text)
    export_columns = {"kind": ExportColumn("kind", format=coded(MEMBERSHIP_KIND_LABELS)),
                      "kind_code": ExportColumn("kind")}
    form_columns = ["user", "institution", "kind", "is_manager", "department"]
    form_overrides = {"kind": SelectField}
    form_args = {"kind": {"choices": list(MEMBERSHIP_KIND_LABELS.items()), "label": "種別"}}
    form_ajax_refs = {
        "user": {"fields": ["login_id", "name"], "page_size": 20},
        "institution": {"fields": ["code", "name"], "page_size": 20},
    }

    def on_model_change(self, form, model, is_created):
        if model.user is None or model.institution is None:
            raise ValidationError("ユーザと医療機関を選択してください。")
        if model.user.role not in INSTITUTION_ROLES:
            raise ValidationError("医療機関に所属できるのは指定医と医療機関の一般ユーザだけです。")
        others = Membership.query.filter(Membership.id != model.id) if model.id else Membership.query
        if model.is_manager and others.filter_by(institution_id=model.institution.id, is_manager=True).first():
            raise ValidationError("この医療機関には既に責任者がいます。責任者は1医療機関に1人です。")
        if model.kind == "primary" and others.filter_by(user_id=model.user.id, kind="primary").first():
            raise ValidationError("主たる勤務先は1人に1つです。")
        if others.filter_by(user_id=model.user.id, institution_id=model.institution.id).first():
            raise ValidationError("この医療機関には既に所属しています。")
        super().on_model_change(form, model, is_created)
