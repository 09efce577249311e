"""Patient data at rest: AES-256-GCM with data keys kept outside the database, and a keyed blind index.

The key ring is a JSON file (default `instance/data-keys.json`, mode 0600; NANBYO_DATA_KEYS_FILE names another
place, e.g. a mounted secret). It holds data keys and blind-index keys by id, and which of each is active:

    {"active": "d2", "keys": {"d1": "<base64>", "d2": "<base64>"},
     "index_active": "i2", "index_keys": {"i1": "<base64>", "i2": "<base64>"}}

Every ciphertext names the data key that made it, so during a rotation old and new rows both read. A blind index is
HMAC-SHA256 of a normalised value: equal values match, nothing about the value can be read back from it, and an
attacker with only the database cannot test guesses without the index key.

Each process keeps the ring in memory and reads the file again when it changes (`rotate-key` run by another
process): a server that went on with the ring it started with would write rows under a key the rotation then drops.
"""
import base64
import hmac
import json
import os
import secrets
import unicodedata
from datetime import date
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from nanbyo.config import create_once
from nanbyo.content_rules import to_katakana

FORMAT = b"\x01"  # version byte of the ciphertext layout: 01 | len(key id) | key id | nonce(12) | ciphertext+tag


class KeyRingError(RuntimeError):
    pass


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _new_id(prefix: str, existing) -> str:
    n = 1
    while f"{prefix}{n}" in existing:
        n += 1
    return f"{prefix}{n}"


class KeyRing:
    def __init__(self, path: Path, data: dict):
        self.path = path
        self.stamp = None  # the file as it was when read (file_stamp); None: read it again at the next keyring()
        self.active = data["active"]
        self.keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
        self.index_active = data["index_active"]
        self.index_keys = {k: base64.b64decode(v) for k, v in data["index_keys"].items()}
        if self.active not in self.keys or self.index_active not in self.index_keys:
            raise KeyRingError(f"鍵ファイル {path} の有効な鍵が見つかりません。")
        if any(len(k) != 32 for k in (*self.keys.values(), *self.index_keys.values())):
            raise KeyRingError(f"鍵ファイル {path} の鍵の長さが正しくありません（256 ビット）。")

    # --- file ----------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path, create=True) -> "KeyRing":
        path = Path(path)
        if not path.exists():
            if not create:
                raise KeyRingError(f"鍵ファイル {path} がありません。")
            new = {"active": "d1", "keys": {"d1": _b64(AESGCM.generate_key(256))},
                   "index_active": "i1", "index_keys": {"i1": _b64(secrets.token_bytes(32))}}
            # Another process may be making the file too: the first one made is everyone's.
            return cls(path, json.loads(create_once(path, json.dumps(new).encode())))
        stamp = file_stamp(path)  # before reading: a file replaced meanwhile is read again next time
        ring = cls(path, json.loads(path.read_text()))
        ring.stamp = stamp
        return ring

    def to_json(self) -> dict:
        return {"active": self.active, "keys": {k: _b64(v) for k, v in self.keys.items()},
                "index_active": self.index_active, "index_keys": {k: _b64(v) for k, v in self.index_keys.items()}}

    def save(self):
        """Write atomically (a temporary file renamed over the old), readable by the owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # --- encryption ----------------------------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        key_id = self.active.encode()
        nonce = secrets.token_bytes(12)
        return FORMAT + bytes([len(key_id)]) + key_id + nonce + AESGCM(self.keys[self.active]).encrypt(
            nonce, plaintext, aad)

    def key_id_of(self, blob: bytes) -> str:
        if not blob or blob[:1] != FORMAT:
            raise KeyRingError("暗号文の形式が正しくありません。")
        return bytes(blob[2:2 + blob[1]]).decode()

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        blob = bytes(blob)
        key_id = self.key_id_of(blob)
        if key_id not in self.keys:
            raise KeyRingError(f"暗号鍵 {key_id} が鍵ファイルにありません。")
        start = 2 + blob[1]
        try:
            return AESGCM(self.keys[key_id]).decrypt(blob[start:start + 12], blob[start + 12:], aad)
        except InvalidTag as e:
            raise KeyRingError("暗号文を復号できません（改ざん、または別のレコードの暗号文です）。") from e

    def reencrypted(self, blob: bytes, aad: bytes) -> bytes | None:
        """`blob` under the active key, None when it already is (the key rotation's step for each thing it rewrites)."""
        blob = bytes(blob)
        return None if self.key_id_of(blob) == self.active else self.encrypt(self.decrypt(blob, aad), aad)

    def encrypt_json(self, value, aad: bytes) -> bytes:
        return self.encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True).encode(), aad)

    def decrypt_json(self, blob: bytes, aad: bytes):
        return json.loads(self.decrypt(blob, aad))

    # --- blind index ---------------------------------------------------------------------------------------------
    def blind_index(self, value: str, key_id: str | None = None) -> str:
        key = self.index_keys[key_id or self.index_active]
        return hmac.new(key, value.encode(), sha256).hexdigest()

    def blind_indexes(self, value: str) -> list[str]:
        """The value under every index key: a search during a rotation finds rows not yet re-indexed."""
        return [self.blind_index(value, k) for k in self.index_keys]

    # --- rotation ------------------------------------------------------------------------------------------------
    def begin_rotation(self) -> tuple[str, str]:
        """Add a new data key and index key, make them active, save. Old keys stay until finish_rotation()."""
        self.active = _new_id("d", self.keys)
        self.keys[self.active] = AESGCM.generate_key(256)
        self.index_active = _new_id("i", self.index_keys)
        self.index_keys[self.index_active] = secrets.token_bytes(32)
        self.save()
        return self.active, self.index_active

    def finish_rotation(self):
        """Drop every key but the active ones (call only once everything is re-encrypted)."""
        self.keys = {self.active: self.keys[self.active]}
        self.index_keys = {self.index_active: self.index_keys[self.index_active]}
        self.save()


def keys_path(app=None) -> Path:
    app = app or current_app
    return Path(app.config.get("NANBYO_DATA_KEYS_FILE") or Path(app.instance_path) / "data-keys.json")


def file_stamp(path) -> tuple | None:
    """What tells a changed key file (save() renames a new file over it), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def keyring(app=None) -> KeyRing:
    """The app's key ring: read on first use (the file created if there is none), and again whenever the file has
    changed since. A file gone missing under a running process does not make new keys: the ring read is kept."""
    app = app or current_app
    path = keys_path(app)
    ring = app.extensions.get("nanbyo_keyring")
    stamp = file_stamp(path) if ring is not None else None
    if ring is None or ring.path != path or (stamp is not None and stamp != ring.stamp):
        ring = KeyRing.load(path)
        app.extensions["nanbyo_keyring"] = ring
    return ring


# --- normalised search values ------------------------------------------------------------------------------------

_SMALL_KANA = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")


def normalise_kana(text: str) -> str:
    """カナ as a clerk may type it: 全角/半角, ひらがな, spaces and small kana do not matter."""
    text = to_katakana(unicodedata.normalize("NFKC", text or ""))
    text = "".join(c for c in text if not c.isspace() and c not in "・･")
    return text.translate(_SMALL_KANA)


def patient_search_value(kana: str, birth_date: date) -> str:
    return f"{normalise_kana(kana)}|{birth_date.isoformat()}"
