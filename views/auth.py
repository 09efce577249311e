"""Login, logout and first-login setup (password, e-mail, key file). Plain Flask views outside the admin."""
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from forms.auth import ConfirmForm, FirstLoginForm, LoginForm
from models._types import utcnow
from nanbyo import audit, auth, database, sessions
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
        login_id = form.login_id.data.strip()
        # One unit of work: the failure count or the new session, and their log entries, commit together.
        outcome = auth.authenticate(login_id, form.password.data, key_content, form.key_code.data or "")
        user = outcome.user
        if outcome.ok:
            sessions.start(user)
            audit.record("login", target=user, actor=user)
            if user.needs_setup:
                return redirect(url_for("auth.first_login"))
            return redirect(_safe_next(request.args.get("next")) or url_for("admin.index"))
        data = {"login_id": login_id[:64], "reason": outcome.reason}
        if outcome.told:
            data["told"] = True  # both factors were right: the page named the account's state
        audit.record("login_failed", result="failure", actor=user, target=user, commit=False, data=data)
        if outcome.locked_now:
            sessions.revoke_all(user)
            audit.record("lockout", actor=user, target=user, commit=False,
                         data={"failed_logins": user.failed_logins})
        # LOGIN_FAILED_MESSAGE for every failure; a locked or disabled account's owner (both factors right) is told.
        message = auth.failure_message(outcome)
        db.session.commit()
        flash(message, "error")
        return render_template("auth/login.html", form=form), 200
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        database.begin_write()
        user = current_user._get_current_object()
        sessions.end()
        audit.record("logout", target=user, actor=user)
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
            new_hash = auth.hash_password(form.new_password.data)
            database.begin_write()
            user.password_hash = new_hash
            user.password_changed_at = utcnow()
            user.must_change_password = False
            user.email = form.email.data.strip()
            sessions.revoke_all(user, keep_current=True)
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
        database.begin_write()
        content = auth.register_key_file(user)
        # Logging in again with the file proves it was saved: this session, and any other, ends here.
        sessions.revoke_all(user)
        sessions.end()
        audit.record("key_issue", target=user, actor=user, data={"first_login": True})
        return Response(content, mimetype="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename={auth.key_file_name(user)}"})
    return render_template("auth/first_login_key.html", form=form, user=user)
