"""Files people upload and download (scans of paper forms), and the removal of files the application wrote."""
import errno
import hashlib
import os

# What a clerk reads when the file store is full: the upload is refused whole, nothing of it kept.
STORE_FULL = ("ファイルの保存先の空き容量が足りないため、保存できませんでした。何も保存していません。"
              "システムの管理者に連絡してください。")


def remove(*paths):
    """Delete the files, those already gone included."""
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def remove_strays(folder, named, before):
    """Delete the files of `folder` no row names (`named`) that were last written before `before` (a datetime):
    what a run that stopped left behind."""
    cutoff = before.timestamp()
    for path in folder.iterdir():
        if path.is_file() and path.name not in named and path.stat().st_mtime < cutoff:
            remove(path)


def open_private(path):
    """A new file (never one already there) only its owner may read, open for writing bytes."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def store_full(error: BaseException) -> bool:
    """Whether `error` says the file store has no room (disk full, quota): a refusal to explain, not a crash."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def sha256_of(path) -> str:
    """The file's SHA-256 (hex), read in blocks: any size in little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
