"""Backup and restore (issue 15): `flask --app app nanbyo backup DIR` and `restore DIR`.

A backup is a folder DIR/<UTC time>/ holding
- the database, consistent at one moment: PostgreSQL through its own tool (pg_dump, custom format, no owner or
  privileges), SQLite through its online backup API (a copy while the app keeps writing);
- the encrypted file store that is not transient: the scans (the file store's "scans" area, NANBYO_SCAN_DIR or object
  storage), copied out still encrypted with the data keys;
- manifest.json: what it is (time, database kind, schema revision), every file with its size and SHA-256, and a key
  check value per data and index key (HMAC of a fixed text: it shows which keys the rows need without giving them).
The key material (instance/data-keys.json, secret_key, audit-signing.key) is never in a backup: it is backed up
separately (README). KEEP generations are kept; older ones (folders with a manifest) are deleted.

A restore goes into an empty deployment only (a database without tables, no scan in the file store). Before anything is
written it checks every file against the manifest and the instance's key file against the check values: with the
wrong key file it stops with a clear message instead of bringing back rows nobody can read.
"""
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess  # pg_dump / pg_restore, run with an argument list and no shell
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from nanbyo import crypto, files
from nanbyo.files.storage import copy_out
from nanbyo.extensions import db

KEEP = 3
FORMAT = "nanbyo-backup/1"
MANIFEST = "manifest.json"
CHECK_TEXT = b"nanbyo backup key check"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message is for the operator (Japanese)."""


def key_checks(ring) -> dict:
    """A check value per key of the ring: HMAC-SHA256 of a fixed text, 16 hex digits."""
    keys = {**{f"data:{k}": v for k, v in ring.keys.items()}, **{f"index:{k}": v for k, v in ring.index_keys.items()}}
    return {name: hmac.new(key, CHECK_TEXT, hashlib.sha256).hexdigest()[:16] for name, key in keys.items()}


def _database_kind() -> str:
    return db.engine.dialect.name


def _libpq_url() -> str:
    """The database for pg_dump / pg_restore, without its password (that goes in PGPASSWORD: never in the process
    list)."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql", password=None)
    return url.render_as_string(hide_password=False)


def _libpq_env() -> dict:
    password = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).password
    return dict(os.environ, **({"PGPASSWORD": str(password)} if password else {}))


def _sqlite_path() -> Path:
    return Path(make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).database)


def _revision() -> str:
    with db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() or ""


def backup(directory, keep=KEEP, now=None) -> Path:
    """Write one backup generation under `directory`; returns its folder."""
    now = now or datetime.now(timezone.utc)
    target = Path(directory) / now.strftime("%Y%m%dT%H%M%S%fZ")
    target.mkdir(parents=True, mode=0o700)
    kind = _database_kind()
    if kind == "postgresql":
        database = target / "database.dump"
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={database}",
              f"--dbname={_libpq_url()}"], "pg_dump")
    else:
        database = target / "database.sqlite3"
        source = sqlite3.connect(_sqlite_path())
        try:
            copy = sqlite3.connect(database)
            with copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
    stored = [database]
    scans = files.store("scans")
    (target / "scans").mkdir(mode=0o700)
    for entry in sorted(scans.entries(), key=lambda e: e.name):
        copy_out(scans, entry.name, target / "scans" / entry.name)
        stored.append(target / "scans" / entry.name)
    manifest = {"format": FORMAT, "created_at": now.isoformat(), "database": kind, "revision": _revision(),
                "keys": key_checks(crypto.keyring()),
                "files": [{"path": str(p.relative_to(target)), "bytes": p.stat().st_size, "sha256": files.sha256_of(p)}
                          for p in stored]}
    with files.open_private(target / MANIFEST) as out:
        out.write(json.dumps(manifest, ensure_ascii=False, indent=1).encode())
    _prune(Path(directory), keep)
    return target


def generations(directory) -> list[Path]:
    """The backup folders under `directory`, oldest first."""
    return sorted(p for p in Path(directory).iterdir() if (p / MANIFEST).is_file()) if Path(directory).is_dir() else []


def _prune(directory: Path, keep: int):
    for old in generations(directory)[:-max(keep, 1)]:
        shutil.rmtree(old)


def _run(command, name):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=_libpq_env())
    except FileNotFoundError:
        raise BackupError(f"{name} が見つかりません（PostgreSQL のクライアント postgresql-client を入れてください）。") from None
    if result.returncode != 0:
        # The command's own message may name the server: it goes to the operator's terminal, never to a page.
        raise BackupError(f"{name} が失敗しました: {result.stderr.strip()[:500]}")


def _checked_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} にバックアップ（{MANIFEST}）がありません。")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError("このバックアップの形式は読めません。")
    for entry in manifest["files"]:
        file = folder / entry["path"]
        if not file.is_file() or file.stat().st_size != entry["bytes"] or files.sha256_of(file) != entry["sha256"]:
            raise BackupError(f"バックアップのファイル {entry['path']} が壊れているか、ありません（チェックサム不一致）。")
    return manifest


def check_keys(manifest) -> None:
    """The instance's key file must hold every key the backup's rows were written with."""
    try:
        ring = crypto.keyring()
    except crypto.KeyRingError as e:
        raise BackupError(f"鍵ファイルを読めません: {e}") from None
    ours = key_checks(ring)
    missing = [name for name, check in manifest["keys"].items() if ours.get(name) != check]
    if missing:
        raise BackupError("この鍵ファイル（data-keys.json）では、このバックアップの患者情報を読めません（鍵 "
                          f"{'・'.join(sorted(missing))} が一致しません）。バックアップした時の鍵ファイルを instance/ に置いてから"
                          "戻してください。何も書き込んでいません。")


def restore(folder) -> dict:
    """Bring a backup back into this (empty) deployment; returns its manifest. `folder`: a generation, or the folder
    holding generations (the newest is taken)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file() and generations(folder):
        folder = generations(folder)[-1]
    manifest = _checked_manifest(folder)
    kind = _database_kind()
    if manifest["database"] != kind:
        raise BackupError(f"このバックアップは {manifest['database']} のものです（このサーバは {kind}）。")
    check_keys(manifest)
    tables = inspect(db.engine).get_table_names()
    if tables:
        raise BackupError("戻す先のデータベースが空ではありません（表があります）。空のデータベースに戻してください。")
    scans = files.store("scans")
    if next(iter(scans.entries()), None) is not None:
        raise BackupError(f"戻す先のスキャンファイルの保存先（{scans}）が空ではありません。")
    db.session.remove()
    if kind == "postgresql":
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
              f"--dbname={_libpq_url()}", str(folder / "database.dump")], "pg_restore")
    else:
        db.engine.dispose()
        source = sqlite3.connect(folder / "database.sqlite3")
        try:
            target = sqlite3.connect(_sqlite_path())
            with target:
                source.backup(target)
            target.close()
        finally:
            source.close()
    for entry in manifest["files"]:
        if entry["path"].startswith("scans/"):  # at most NANBYO_SCAN_MAX_BYTES each
            scans.put(Path(entry["path"]).name, (folder / entry["path"]).read_bytes())
    db.engine.dispose()
    return manifest
