"""Passwords (argon2id), the password policy, key files (暗号化鍵ファイル) and the login decision."""
import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from models._types import utcnow
from models.accounts import User
from nanbyo import database
from nanbyo.extensions import db
from nanbyo.notices import OPERATOR_NAME
from nanbyo.roles import (INSTITUTION_ROLES, MUNICIPALITY_ROLES, MUNICIPALITY_USER, STATUS_ACTIVE,
                          STATUS_DISABLED, STATUS_LOCKED)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
KEY_FILE_MAGIC = "NANBYO-KEYFILE-1"
KEY_FILE_MAX_BYTES = 4096
INITIAL_PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
LOGIN_FAILED_MESSAGE = ("ログインID、パスワードまたは鍵ファイルが正しくありません。"
                        "5回続けて誤るとアカウントがロックされます。ロックされた場合は医療機関の責任者"
                        "または発行元の自治体に解除を依頼してください。")


@lru_cache(maxsize=2)
def _hasher(profile: str) -> PasswordHasher:
    if profile == "fast":  # tests only: same algorithm, cheaper parameters
        return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def hasher() -> PasswordHasher:
    return _hasher(current_app.config.get("NANBYO_ARGON2_PROFILE", "default"))


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash():
    # Verifying against a real hash for unknown IDs keeps their timing the same as a wrong password.
    return _dummy_hash_for(current_app.config.get("NANBYO_ARGON2_PROFILE", "default"))


@lru_cache(maxsize=2)
def _dummy_hash_for(profile):
    return _hasher(profile).hash(secrets.token_urlsafe(16))


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset:
    path = Path(__file__).parent / "data" / "common-passwords.txt"
    return frozenset(line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.startswith("#"))


def password_problems(password: str, login_id: str = "") -> list[str]:
    """Japanese reasons a new password is refused (empty list = accepted)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"パスワードは{MAX_PASSWORD_LENGTH}文字以下にしてください。")
    lowered = password.lower()
    if lowered in _common_passwords():
        problems.append("よく使われる（漏えいが知られている）パスワードは使えません。")
    if len(set(password)) < 5:
        problems.append("同じ文字の繰り返しが多すぎます。5種類以上の文字を使ってください。")
    if _is_sequence(lowered):
        problems.append("連続した文字や数字（1234…、abcd…）だけのパスワードは使えません。")
    if login_id and login_id.lower() in lowered:
        problems.append("ログインIDを含むパスワードは使えません。")
    return problems


def _is_sequence(s: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(s, s[1:])}
    return len(s) > 1 and len(steps) == 1 and steps.pop() in (1, -1)


def generate_initial_password() -> str:
    return "".join(secrets.choice(INITIAL_PASSWORD_ALPHABET) for _ in range(14))


# --- key files -------------------------------------------------------------------------------------------------

def _digest(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


def issue_key_file(user: User) -> bytes:
    """Make a new key file for `user`, keep only its digest; the previous file stops working."""
    secret = secrets.token_bytes(32)
    user.key_digest = _digest(secret)
    user.key_issued_at = utcnow()
    lines = [KEY_FILE_MAGIC, f"login_id: {user.login_id}", f"issued_at: {user.key_issued_at.isoformat()}",
             f"key: {base64.urlsafe_b64encode(secret).decode()}", ""]
    return "\n".join(lines).encode()


def key_file_matches(user: User, content: bytes | None) -> bool:
    if not user.key_digest or not content or len(content) > KEY_FILE_MAX_BYTES:
        return False
    try:
        lines = content.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return False
    if not lines or lines[0].strip() != KEY_FILE_MAGIC:
        return False
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    try:
        secret = base64.urlsafe_b64decode(fields.get("key", "").strip())
    except ValueError:
        return False
    return (fields.get("login_id", "").strip() == user.login_id
            and hmac.compare_digest(_digest(secret), user.key_digest))


def key_file_name(user: User) -> str:
    return f"{user.login_id}.key"


# --- key registration codes: the second factor while a re-issued key file is not yet registered ---------------

KEY_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: it is typed from paper
KEY_CODE_GROUPS = 3


def normalise_key_code(text: str) -> str:
    return re.sub(r"[\s\-ー－]", "", unicodedata.normalize("NFKC", text or "")).upper()


def new_key_code() -> tuple[str, str]:
    """A fresh registration code as printed (XXXX-XXXX-XXXX) and its hash. Hashing is slow: do it before the lock."""
    groups = ["".join(secrets.choice(KEY_CODE_ALPHABET) for _ in range(4)) for _ in range(KEY_CODE_GROUPS)]
    code = "-".join(groups)
    return code, hash_password(normalise_key_code(code))


def reissue_key(user: User, code_hash: str):
    """Revoke the key file; until the code expires, password + code register a new one. Returns the expiry."""
    user.key_digest = None
    user.key_code_hash = code_hash
    user.key_code_expires_at = utcnow() + current_app.config["NANBYO_KEY_CODE_VALIDITY"]
    return user.key_code_expires_at


def key_code_matches(user: User, typed: str) -> bool:
    code = normalise_key_code(typed)
    return bool(user.key_code_hash and code and user.key_code_expires_at and user.key_code_expires_at > utcnow()
                and verify_password(user.key_code_hash, code))


def register_key_file(user: User) -> bytes:
    """The new key file of a user in setup; a registration code it used is spent."""
    user.key_code_hash = None
    user.key_code_expires_at = None
    return issue_key_file(user)


# --- the login decision ----------------------------------------------------------------------------------------

@dataclass
class LoginOutcome:
    user: User | None
    ok: bool
    reason: str  # for the operation log; the page says LOGIN_FAILED_MESSAGE unless `told` (see failure_message)
    locked_now: bool = False
    # A locked or disabled account whose password and second factor were right: only then is the state told (its
    # owner needs to know whom to ask); anyone without both factors learns nothing about the account.
    told: bool = False


def second_factor_problem(user: User, key_content: bytes | None, key_code: str) -> str | None:
    """None when the second factor holds; else why not (for the log)."""
    if user.key_digest:
        return None if key_file_matches(user, key_content) else "bad_key_file"
    if user.key_code_hash:
        # A re-issued key: password alone must never be enough.
        return None if key_code_matches(user, key_code) else "bad_key_code"
    if user.key_issued_at is None:
        return None  # first login: the initial password from the notice, then the key file is registered
    return "no_key_file"


# States told to a user who proved both factors; a deleted ID is never told (it may be issued again elsewhere).
TOLD_STATUSES = (STATUS_LOCKED, STATUS_DISABLED)


def authenticate(login_id: str, password: str, key_content: bytes | None, key_code: str = "") -> LoginOutcome:
    """Check ID, password and the second factor; count failures and lock at the threshold.

    Returns inside the unit of work (database.begin_write) with nothing committed: the caller starts the session,
    logs the outcome and commits, so that a login and its log entry never come apart."""
    user = db.session.execute(db.select(User).filter_by(login_id=login_id)).scalar_one_or_none()
    checked = {}

    def password_ok():
        digest = user.password_hash if user else None
        if digest not in checked:
            checked[digest] = verify_password(digest, password)
        return checked[digest]

    password_ok()  # argon2 is slow: before the lock (also for an unknown ID, so that its timing is the same)
    database.begin_write()  # the account as it is now, and nobody else changes it until the commit
    if user is None:
        return LoginOutcome(None, False, "unknown_login_id")
    problem = "bad_password" if not password_ok() else second_factor_problem(user, key_content, key_code)
    if user.status != STATUS_ACTIVE:
        # Neither counted nor told unless both factors hold: a locked account answers a wrong guess exactly as an
        # active one does.
        return LoginOutcome(user, False, user.status, told=problem is None and user.status in TOLD_STATUSES)
    if problem is None:
        user.failed_logins = 0
        user.last_login_at = utcnow()
        return LoginOutcome(user, True, "ok")
    user.failed_logins += 1
    locked_now = user.failed_logins >= current_app.config["NANBYO_LOCKOUT_THRESHOLD"]
    if locked_now:
        user.status = STATUS_LOCKED
    return LoginOutcome(user, False, problem, locked_now)


def _whom_to_ask(user: User, locked: bool) -> str:
    """Who can unlock (or turn back on) this account, as the login page names them (nanbyo.access decides)."""
    if user.role in INSTITUTION_ROLES:
        issuer = user.issuing_municipality.name if user.issuing_municipality else OPERATOR_NAME
        return f"医療機関の責任者または発行元の自治体（{issuer}）" if locked else f"発行元の自治体（{issuer}）"
    if user.role == MUNICIPALITY_USER and user.municipality is not None:
        return f"所属する自治体（{user.municipality.name}）の管理者"
    if user.role in MUNICIPALITY_ROLES:
        return OPERATOR_NAME  # a 自治体 管理者 is the operator's to manage
    return f"{OPERATOR_NAME}の管理者"


def failure_message(outcome: LoginOutcome) -> str:
    """What the login page says to a refused login: LOGIN_FAILED_MESSAGE, the same for every failure, except to
    the owner of a locked or disabled account (both factors right), who is told the state and whom to ask."""
    user = outcome.user
    if not outcome.told or user is None:
        return LOGIN_FAILED_MESSAGE
    if user.status == STATUS_LOCKED:
        return ("このアカウントはロックされています（連続してログインに失敗したため）。"
                f"{_whom_to_ask(user, locked=True)}に解除を依頼してください。")
    return f"このアカウントは無効になっています。{_whom_to_ask(user, locked=False)}に問い合わせてください。"


def unlock(user: User) -> bool:
    """Clear a lockout and nothing else: a disabled or deleted account stays as it is."""
    if user.status not in (STATUS_ACTIVE, STATUS_LOCKED):
        return False
    user.status = STATUS_ACTIVE
    user.failed_logins = 0
    return True


def enable(user: User) -> bool:
    """The issuer turns a disabled (or locked) account back on; a deleted ID stays deleted."""
    if user.status not in (STATUS_DISABLED, STATUS_LOCKED):
        return False
    user.status = STATUS_ACTIVE
    user.failed_logins = 0
    return True
