"""Login, logout and first-login setup (password, e-mail, key file). Plain Flask views outside the admin."""
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from forms.auth import ConfirmForm, FirstLoginForm, LoginForm
from models._types import utcnow
from nanbyo import audit, auth, sessions
from nanbyo.extensions import db

bp = Blueprint("auth", __name__)


def _safe_next(target):
    """Only same-site relative paths: an open redirect after login would be a phishing tool."""
    if not target:
        return None
    # Browsers read a backslash as "/" and drop tabs and newlines: "/" + backslash + "evil.example" goes off-site.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/")
def index():
    return redirect(url_for("admin.index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("admin.index"))
    form = LoginForm()
    if form.validate_on_submit():
        key_content = form.key_file.data.read(auth.KEY_FILE_MAX_BYTES + 1) if form.key_file.data else None
        outcome = auth.authenticate(form.login_id.data.strip(), form.password.data, key_content)
        if outcome.ok:
            sessions.start(outcome.user)
            audit.record("login", target=outcome.user, actor=outcome.user)
            if outcome.user.needs_setup:
                return redirect(url_for("auth.first_login"))
            return redirect(_safe_next(request.args.get("next")) or url_for("admin.index"))
        actor = outcome.user
        audit.record("login_failed", result="failure", actor=actor, target=actor,
                     data={"login_id": form.login_id.data.strip()[:64], "reason": outcome.reason})
        if outcome.locked_now:
            sessions.revoke_all(outcome.user)
            audit.record("lockout", result="success", actor=actor, target=actor,
                         data={"failed_logins": outcome.user.failed_logins})
        flash(auth.LOGIN_FAILED_MESSAGE, "error")
        return render_template("auth/login.html", form=form), 200
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        audit.record("logout", target=user)
        sessions.end()
        flash("ログアウトしました。", "success")
    return redirect(url_for("auth.login"))


@bp.route("/first-login", methods=["GET", "POST"])
@login_required
def first_login():
    user = current_user._get_current_object()
    if not user.needs_setup:
        return redirect(url_for("admin.index"))
    if not user.must_change_password and user.email:
        return redirect(url_for("auth.first_login_key"))
    form = FirstLoginForm(email=user.email)
    if form.validate_on_submit():
        problems = auth.password_problems(form.new_password.data, user.login_id)
        if auth.verify_password(user.password_hash, form.new_password.data):
            problems.append("初期パスワードと同じパスワードは使えません。")
        if problems:
            for p in problems:
                form.new_password.errors.append(p)
        else:
            user.password_hash = auth.hash_password(form.new_password.data)
            user.password_changed_at = utcnow()
            user.must_change_password = False
            user.email = form.email.data.strip()
            db.session.commit()
            audit.record("password_change", target=user, data={"first_login": True})
            return redirect(url_for("auth.first_login_key"))
    return render_template("auth/first_login.html", form=form, user=user)


@bp.route("/first-login/key", methods=["GET", "POST"])
@login_required
def first_login_key():
    user = current_user._get_current_object()
    if not user.needs_setup:
        return redirect(url_for("admin.index"))
    if user.must_change_password or not user.email:
        return redirect(url_for("auth.first_login"))
    form = ConfirmForm()
    if form.validate_on_submit():
        content = auth.issue_key_file(user)
        db.session.commit()
        audit.record("key_issue", target=user, data={"first_login": True})
        # Logging in again with the file proves it was saved; this session ends here.
        sessions.end()
        return Response(content, mimetype="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename={auth.key_file_name(user)}"})
    return render_template("auth/first_login_key.html", form=form, user=user)
