"""Files people upload and download (scans of paper forms) and the file store that keeps them
(nanbyo.files.storage)."""
import errno
import hashlib
import os

# What a clerk reads when the file store is full: the upload is refused whole, nothing of it kept.
STORE_FULL = ("ファイルの保存先の空き容量が足りないため、保存できませんでした。何も保存していません。"
              "システムの管理者に連絡してください。")
# … and when the file store (object storage) does not answer.
STORE_UNAVAILABLE = ("ファイルの保存先（オブジェクトストレージ）に接続できないため、保存できませんでした。何も保存していません。"
                     "時間をおいてもう一度お試しください。続く場合はシステムの管理者に連絡してください。")


def store(area):
    """The file store of `area` ("scans", "imports", "uploads", "exports"): nanbyo.files.storage."""
    from nanbyo.files.storage import for_area
    return for_area(area)


def open_private(path):
    """A new file (never one already there) only its owner may read, open for writing bytes."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def refusal(error: BaseException) -> str | None:
    """What to tell the user when `error` is the file store's refusal (no room, or not answering) rather than a
    bug; None for anything else."""
    from nanbyo.files.storage import StoreUnavailable
    if isinstance(error, StoreUnavailable):
        return STORE_UNAVAILABLE
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return STORE_FULL
    return None


def sha256_of(path) -> str:
    """The file's SHA-256 (hex), read in blocks: any size in little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reencrypt_stored(area_store, name, aad: bytes, ring) -> bool:
    """The stored file `name` under the ring's active key, rewritten in place (the key rotation); False when it
    already was, or is gone."""
    try:
        blob = area_store.read(name)
    except FileNotFoundError:
        return False
    new = ring.reencrypted(blob, aad)
    if new is None:
        return False
    area_store.replace(name, new)
    return True
