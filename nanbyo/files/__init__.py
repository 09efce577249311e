"""Files people upload and download (scans of paper forms), and the removal of files the application wrote."""
import os


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
