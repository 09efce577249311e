"""Configuration: defaults, then the instance folder, then the environment, then the test config."""
import os
import secrets
from datetime import timedelta
from pathlib import Path


def create_once(path, data: bytes) -> bytes:
    """The content of the file at `path`; when there is none, `data` is written there first (mode 0600).

    For the secrets made on first use (the secret key, the data keys, the log's signing key): several processes
    starting side by side may all make one. The file appears whole or not at all (written under a name of its own,
    then linked into place, which fails if another was first), and every process returns the one that got there."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process was first: its file is the one
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_bytes()


def _instance_secret(app):
    """SECRET_KEY from the environment, else a key generated once into the instance folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    return create_once(Path(app.instance_path) / "secret_key", secrets.token_hex(32).encode()).decode().strip()


def load_config(app, test_config=None):
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    default_db = "sqlite:///" + str(Path(app.instance_path) / "nanbyo.db")
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("NANBYO_DATABASE_URL", default_db),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        BABEL_DEFAULT_LOCALE="ja",
        BABEL_DEFAULT_TIMEZONE="Asia/Tokyo",
        FLASK_ADMIN_SWATCH="default",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (server-checked) session
        SESSION_COOKIE_NAME="nanbyo_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("NANBYO_TLS") == "1",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        NANBYO_TLS=os.environ.get("NANBYO_TLS") == "1",
        # Reverse proxies in front of the app that set X-Forwarded-For / -Proto / -Host (0: none; the headers are
        # then ignored, so that a client cannot choose the address the operation log records).
        NANBYO_PROXY_HOPS=int(os.environ.get("NANBYO_PROXY_HOPS") or 0),
        NANBYO_IDLE_TIMEOUT=timedelta(minutes=30),
        NANBYO_LOCKOUT_THRESHOLD=5,
        # How long the registration code of a re-issued key file (printed on its notice) may be used.
        NANBYO_KEY_CODE_VALIDITY=timedelta(days=7),
        NANBYO_ARGON2_PROFILE="default",
        NANBYO_MASTERS_DIR=str(Path(app.root_path) / "data" / "masters"),
        NANBYO_DEMO_KEYS_DIR=str(Path(app.instance_path) / "demo-keys"),
        # The address printed on notices made outside a request (the CLI).
        NANBYO_PUBLIC_URL=os.environ.get("NANBYO_PUBLIC_URL", "http://127.0.0.1:5000"),
        # Access-key lookups per municipality user: failures allowed in the window, and lookups per minute.
        NANBYO_KEY_LOOKUP_MAX_FAILURES=10,
        NANBYO_KEY_LOOKUP_WINDOW=timedelta(minutes=15),
        NANBYO_KEY_LOOKUP_MAX_PER_MINUTE=30,
        NANBYO_UPLOAD_DIR=str(Path(app.instance_path) / "uploads"),
        # List exports above this many rows are written by the task queue (nanbyo.tasks) into NANBYO_EXPORT_DIR
        # and kept there for NANBYO_EXPORT_KEEP (the environment gives hours).
        NANBYO_EXPORT_INLINE_ROWS=int(os.environ.get("NANBYO_EXPORT_INLINE_ROWS", "50000")),
        NANBYO_EXPORT_KEEP=timedelta(hours=float(os.environ.get("NANBYO_EXPORT_KEEP", "24"))),
        NANBYO_EXPORT_DIR=str(Path(app.instance_path) / "exports"),
        # An XML upload larger than this is imported by the task queue: its files wait encrypted in NANBYO_IMPORT_DIR,
        # its report is kept NANBYO_IMPORT_KEEP (the environment gives hours).
        NANBYO_XML_INLINE_BYTES=int(os.environ.get("NANBYO_XML_INLINE_BYTES", str(1024 * 1024))),
        NANBYO_IMPORT_DIR=str(Path(app.instance_path) / "imports"),
        # Scans of paper forms, encrypted (nanbyo.files.scans), and the largest one file may be.
        NANBYO_SCAN_DIR=str(Path(app.instance_path) / "scans"),
        NANBYO_SCAN_MAX_BYTES=int(os.environ.get("NANBYO_SCAN_MAX_BYTES", str(20 * 1024 * 1024))),
        NANBYO_IMPORT_KEEP=timedelta(hours=float(os.environ.get("NANBYO_IMPORT_KEEP", str(7 * 24)))),
        # The file store (nanbyo.files.storage): unset, the folders above; `s3://bucket/prefix`, S3-compatible object
        # storage shared by several app servers (NANBYO_S3_ENDPOINT_URL for a server other than AWS; credentials
        # from the usual AWS_* variables).
        NANBYO_FILE_STORE_URL=os.environ.get("NANBYO_FILE_STORE_URL", ""),
        NANBYO_S3_ENDPOINT_URL=os.environ.get("NANBYO_S3_ENDPOINT_URL", ""),
        NANBYO_S3_REGION=os.environ.get("NANBYO_S3_REGION", ""),
    )
    app.config.from_pyfile("config.py", silent=True)
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["NANBYO_FILE_STORE_URL"]:
        from nanbyo.files.storage import parse_url
        parse_url(app.config["NANBYO_FILE_STORE_URL"])  # a wrong setting stops the start, not the first upload
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)
