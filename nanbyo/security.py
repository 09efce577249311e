"""Request-level security: session loading, first-login gate, security headers, logged denials."""
import secrets

from flask import g, redirect, request, url_for
from flask_login import current_user

from nanbyo import audit, sessions
from nanbyo.extensions import db, login_manager

# Endpoints a user who has not finished first-login setup may still reach.
SETUP_ENDPOINTS = {"auth.first_login", "auth.first_login_key", "auth.logout", "static", "admin.static"}
PUBLIC_ENDPOINTS = {"auth.login", "static", "admin.static", "index"}


def csp_nonce():
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def init_app(app):
    login_manager.user_loader(sessions.load_user)

    @app.before_request
    def first_login_gate():
        if (current_user.is_authenticated and current_user.needs_setup
                and request.endpoint not in SETUP_ENDPOINTS):
            return redirect(url_for("auth.first_login"))
        return None

    @app.after_request
    def security_headers(response):
        h = response.headers
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "same-origin"
        h["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src 'self' 'nonce-{csp_nonce()}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        if app.config["NANBYO_TLS"]:
            h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if request.endpoint not in ("static", "admin.static"):
            # Pages may show personal or patient data: never cache them.
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        return response

    @app.errorhandler(403)
    def forbidden(error):
        db.session.rollback()  # nothing of a refused request is kept; its log entry is a unit of its own
        if current_user.is_authenticated:
            audit.record("access_denied", result="denied",
                         data={"endpoint": request.endpoint or "", "method": request.method,
                               "path": request.path})
        from flask import render_template
        return render_template("errors/403.html"), 403

    app.jinja_env.globals["csp_nonce"] = csp_nonce
