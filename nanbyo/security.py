"""Request-level security: session loading, first-login gate, security headers, logged denials, error pages.

Error pages are Japanese, inside the plain layout, and say nothing of the request beyond what the user already
knows: no stack trace, no exception text, no path echoed back. Each offers the way home (ログイン画面 when anonymous,
ホーム when logged in); nothing of a failed request is kept (its database session is rolled back first).
"""
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from nanbyo import audit, sessions
from nanbyo.exports import JST
from nanbyo.extensions import db, login_manager

# Endpoints a user who has not finished first-login setup may still reach.
SETUP_ENDPOINTS = {"auth.first_login", "auth.first_login_key", "auth.logout", "static", "admin.static"}
PUBLIC_ENDPOINTS = {"auth.login", "static", "admin.static", "index"}


def csp_nonce():
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


# libxml2 parses every XML and XSD upload. The oldest releases with the 2025 fixes of its parser and schema code
# (CVE-2025-6021, CVE-2025-6170, CVE-2025-49794, CVE-2025-49795, CVE-2025-49796, CVE-2025-32414, CVE-2025-32415):
# 2.13.9 on the 2.13 branch, 2.14.5 from 2.14 on.
LIBXML2_FIXED = ((2, 13, 9), (2, 14, 5))


def libxml2_problem(version) -> str | None:
    """Why the libxml2 lxml runs on (a version tuple) must not parse uploads; None when it may."""
    branch_fix, newest_fix = LIBXML2_FIXED
    if version >= newest_fix or (branch_fix <= version < (2, 14, 0)):
        return None
    shown = ".".join(map(str, version))
    return (f"libxml2 {shown} には修正済みの脆弱性があるため起動しません（2.13.9 以上の 2.13 系、または 2.14.5 以上が必要）。"
            f" libxml2 {shown} has known vulnerabilities fixed in 2.13.9 / 2.14.5: upgrade lxml (pip) or the system "
            "libxml2.")


def init_app(app):
    from lxml import etree
    problem = libxml2_problem(etree.LIBXML_VERSION)
    if problem:
        raise RuntimeError(problem)
    hops = app.config["NANBYO_PROXY_HOPS"]
    if hops:
        # The client address, scheme and host as the proxies (and only they) say: the log's 接続元, HSTS, URLs.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
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
        _rollback()  # nothing of a refused request is kept; its log entry is a unit of its own
        if _logged_in():
            audit.record("access_denied", result="denied",
                         data={"endpoint": request.endpoint or "", "method": request.method,
                               "path": request.path})
        return _error_page("errors/403.html", 403)

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        # Flask-WTF's reason ("The CSRF session token is missing.") stays out of the page: it is English and
        # says nothing a user can act on. The page most likely just needs loading again.
        _rollback()
        return _error_page("errors/csrf.html", 400, back_url=same_site_referrer())

    @app.errorhandler(400)
    def bad_request(error):
        _rollback()
        return _error_page("errors/400.html", 400, back_url=same_site_referrer())

    @app.errorhandler(404)
    def not_found(error):
        _rollback()
        return _error_page("errors/404.html", 404)

    @app.errorhandler(405)
    def method_not_allowed(error):
        _rollback()
        allowed = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else {}
        return _error_page("errors/405.html", 405, headers=headers)

    @app.errorhandler(413)
    def too_large(error):
        _rollback()
        return _error_page("errors/413.html", 413, limit_mb=_megabytes(app.config.get("MAX_CONTENT_LENGTH")),
                           back_url=same_site_referrer())

    @app.errorhandler(500)
    def server_error(error):
        # First the rollback: the failed operation's changes must not be committed by anything that follows (the
        # user loader's session touch, a later log entry).
        _rollback()
        # Messages the failed request flashed ("保存しました") would be false now.
        session.pop("_flashes", None)
        reference = secrets.token_hex(4).upper()
        occurred = datetime.now(JST)
        app.logger.error("error page 500 shown: reference %s, %s %s", reference, request.method, request.path)
        return _error_page("errors/500.html", 500, reference=reference,
                           occurred_at=occurred.strftime("%Y-%m-%d %H:%M:%S"))

    @app.errorhandler(HTTPException)
    def other_http_error(error):
        # Codes without a page of their own (401, 408, 429, 501, …): a generic Japanese page, same status.
        if error.code is None or error.code < 400:
            return error
        _rollback()
        return _error_page("errors/other.html", error.code, code=error.code)

    app.jinja_env.globals["csp_nonce"] = csp_nonce


# --- error pages ---------------------------------------------------------------------------------------------------

def _rollback():
    try:
        db.session.rollback()
    except Exception:  # the database itself may be what failed; the page must still be shown
        pass


def _logged_in() -> bool:
    """Whether a user is logged in, without letting a failing database turn an error page into another error."""
    try:
        return bool(current_user.is_authenticated)
    except Exception:
        _rollback()
        return False


def way_home() -> tuple[str, str]:
    """The link an error page offers: ホーム when logged in, else the login page."""
    if _logged_in():
        return url_for("admin.index"), "ホームへ戻る"
    return url_for("auth.login"), "ログイン画面へ"


def same_site_referrer() -> str | None:
    """The page the request came from, as a same-site relative URL (path and query); None when it is missing or
    another site's. The Referrer-Policy (same-origin) keeps other sites' addresses out of it anyway."""
    referrer = request.referrer
    if not referrer or len(referrer) > 2000:
        return None
    try:
        parts = urlsplit(referrer)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.netloc != request.host:
        return None
    path = parts.path or "/"
    target = path + (f"?{parts.query}" if parts.query else "")
    if (not path.startswith("/") or path.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return None
    return target


def _megabytes(limit) -> str:
    if not limit:
        return ""
    mb = limit / (1024 * 1024)
    return f"{mb:.0f}" if mb == int(mb) else f"{mb:.1f}"


def _error_page(template, status, headers=None, **context):
    home_url, home_label = way_home()
    try:
        body = render_template(template, home_url=home_url, home_label=home_label, status=status, **context)
    except Exception:  # the page must never fail: a plain text of its own then
        body = FALLBACK_PAGE.format(home_url=home_url, home_label=home_label)
    return body, status, headers or {}


FALLBACK_PAGE = ("<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"UTF-8\"><title>エラー - 難病・小慢データベース"
                 "</title></head><body><h1>エラーが発生しました</h1><p>操作を完了できませんでした。この操作による変更は"
                 "保存されていません。</p><p><a href=\"{home_url}\">{home_label}</a></p></body></html>")
