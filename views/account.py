"""自アカウント管理: every user's own name, e-mail, password, key file and (doctors) 兼務先 institutions."""
from flask import Response, abort, current_app, flash, jsonify, redirect, url_for
from flask_admin import expose
from flask_login import current_user

from forms.account import ConcurrentAddForm, KeyReissueForm, PasswordChangeForm, profile_form
from forms.auth import ConfirmForm
from models._types import utcnow
from models.accounts import Membership
from models.institutions import Institution
from nanbyo import audit, auth, database, sessions
from nanbyo.exports import JST
from nanbyo.issuance import add_concurrent
from nanbyo.extensions import db
from nanbyo.roles import DOCTOR_KIND_LABELS, MEMBERSHIP_KIND_LABELS, ROLE_LABELS
from views.base import ProtectedBaseView


class AccountView(ProtectedBaseView):
    area = "account"

    def is_visible(self):
        return False  # reached from the user's own menu at the right of the menu bar (admin/nanbyo_base.html)

    def _render(self, profile=None, password=None, key=None, concurrent=None, status=200):
        user = current_user._get_current_object()
        return self.render(
            "account/index.html", user=user,
            profile_form=profile or profile_form(obj=user, formdata=None),
            password_form=password or PasswordChangeForm(formdata=None),
            key_form=key or KeyReissueForm(formdata=None),
            concurrent_form=concurrent or ConcurrentAddForm(formdata=None),
            remove_form=ConfirmForm(formdata=None),
            role_labels=ROLE_LABELS, doctor_kind_labels=DOCTOR_KIND_LABELS,
            membership_kind_labels=MEMBERSHIP_KIND_LABELS, tz=JST), status

    @expose("/")
    def index(self):
        return self._render()

    @expose("/keepalive", methods=["POST"])
    def keepalive(self):
        """The page's script: the user is working (typing, or 「ログインを延長」), so the idle timeout starts again."""
        if not ConfirmForm().validate_on_submit() or not sessions.touch():
            abort(400)
        return jsonify(idle_timeout=int(current_app.config["NANBYO_IDLE_TIMEOUT"].total_seconds()))

    @expose("/profile", methods=["POST"])
    def profile(self):
        form = profile_form()
        if not form.validate_on_submit():
            return self._render(profile=form, status=400)
        database.begin_write()
        user = current_user._get_current_object()
        # Only the form's fields: a posted role, institution or issuer is ignored, and a doctor's name and カナ (part
        # of the 指定, changed by the issuing 自治体) are not on a doctor's form at all.
        fields = [name for name in ("email", "name", "name_kana") if name in form]
        for name in fields:
            setattr(user, name, form[name].data.strip())
        audit.record("update", target=user, data={"fields": fields, "self": True})
        flash("登録内容を更新しました。", "success")
        return redirect(url_for(".index"))

    @expose("/password", methods=["POST"])
    def password(self):
        form = PasswordChangeForm()
        user = current_user._get_current_object()
        if form.validate_on_submit():
            if not auth.verify_password(user.password_hash, form.current_password.data):
                form.current_password.errors.append("現在のパスワードが正しくありません。")
            else:
                problems = auth.password_problems(form.new_password.data, user.login_id)
                if form.new_password.data == form.current_password.data:
                    problems.append("現在と同じパスワードは使えません。")
                form.new_password.errors.extend(problems)
            if not form.errors:
                new_hash = auth.hash_password(form.new_password.data)
                database.begin_write()
                user.password_hash = new_hash
                user.password_changed_at = utcnow()
                # Whoever else is logged in with the old password is logged out.
                sessions.revoke_all(user, keep_current=True)
                audit.record("password_change", target=user)
                flash("パスワードを変更しました。", "success")
                return redirect(url_for(".index"))
        return self._render(password=form, status=400)

    @expose("/key", methods=["POST"])
    def key(self):
        form = KeyReissueForm()
        user = current_user._get_current_object()
        if form.validate_on_submit() and auth.verify_password(user.password_hash, form.current_password.data):
            database.begin_write()
            content = auth.register_key_file(user)
            # A browser logged in with the old key file is logged out.
            sessions.revoke_all(user, keep_current=True)
            audit.record("key_issue", target=user, data={"reissue": True})
            return Response(content, mimetype="application/octet-stream",
                            headers={"Content-Disposition": f"attachment; filename={auth.key_file_name(user)}"})
        if form.current_password.data:
            form.current_password.errors.append("現在のパスワードが正しくありません。")
        return self._render(key=form, status=400)

    @expose("/concurrent", methods=["POST"])
    def add_concurrent(self):
        user = current_user._get_current_object()
        form = ConcurrentAddForm()
        if not user.is_doctor:
            flash("兼務先を登録できるのは指定医だけです。", "error")
            return redirect(url_for(".index"))
        if form.validate_on_submit():
            database.begin_write()
            institution = db.session.execute(
                db.select(Institution).filter_by(code=form.institution_code.data)).scalar_one_or_none()
            if institution is None:
                form.institution_code.errors.append("この医療機関コードの医療機関は登録されていません。")
            elif not institution.active:
                form.institution_code.errors.append("この医療機関は無効（廃止）になっています。")
            elif add_concurrent(user, institution, form.department.data, self=True) is None:
                form.institution_code.errors.append("この医療機関には既に所属しています。")
            else:
                flash(f"兼務先に {institution.name} を追加しました。", "success")
                return redirect(url_for(".index"))
        return self._render(concurrent=form, status=400)

    @expose("/concurrent/<int:membership_id>/remove", methods=["POST"])
    def remove_concurrent(self, membership_id):
        form = ConfirmForm()
        database.begin_write()
        user = current_user._get_current_object()
        membership = db.session.get(Membership, membership_id)
        # Only one's own concurrent memberships; the primary one belongs to the issuing municipality.
        if (form.validate_on_submit() and membership is not None and membership.user_id == user.id
                and membership.kind == "concurrent"):
            if membership.is_manager:
                flash("責任者になっている医療機関は外せません。先に責任者を交代してください。", "error")
                return redirect(url_for(".index"))
            db.session.delete(membership)
            audit.record("delete", target_type="membership", target_id=membership_id, data={"self": True})
            flash("兼務先を外しました。", "success")
            return redirect(url_for(".index"))
        flash("その兼務先は外せません。", "error")
        return redirect(url_for(".index"))
