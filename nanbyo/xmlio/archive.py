"""XML files out of a ZIP a user uploaded, checked before anything is inflated.

From the central directory alone: at most MAX_ENTRIES entries and MAX_TOTAL_BYTES inflated, no entry inflating more
than MAX_RATIO times its compressed size (a ZIP bomb), no path that is absolute, climbs out ("..") or uses a drive or
a backslash (zip slip: nothing is ever written under an entry's name, but such a name is a forged archive), no
nested ZIP, no encrypted entry, no compression but deflate or none. Then each entry is inflated in turn, one at a
time, with at most reader.MAX_FILE_BYTES taken whatever its header claims. Folders are skipped; other files than
.xml are reported, not read.
"""
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from nanbyo.xmlio.reader import MAX_FILE_BYTES, Refused

MAX_ENTRIES = 10_000
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 100
ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 64 * 1024


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC)


@dataclass
class Entry:
    """One file of the archive: its name and either its bytes or why it is not read."""
    name: str
    data: bytes | None = None
    problem: str | None = None


def _name_problem(name: str) -> str | None:
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "ZIP内のファイル名が不正です（絶対パス・ドライブ名・\\ は使えません）。"
    if ".." in path.parts:
        return "ZIP内のファイル名が不正です（.. は使えません）。"
    if "\x00" in name:
        return "ZIP内のファイル名が不正です。"
    return None


def entries(file):
    """The archive's entries (Entry) from a binary file object; Refused for the archive as a whole."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise Refused("ZIPファイルが壊れています。") from None
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise Refused(f"ZIP内のファイルが多すぎます（上限 {MAX_ENTRIES:,}）。ZIPを分けてください。")
    total = 0
    for info in infos:
        problem = _name_problem(info.filename)
        if problem:
            raise Refused(f"{problem}（{info.filename[:100]!r}）")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise Refused("ZIPの展開後のサイズが大きすぎます。ZIPを分けてください。")
        if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise Refused(f"ZIPの圧縮率が異常です（ZIP爆弾の疑い）: {info.filename}")
        if info.flag_bits & 0x1:
            raise Refused(f"暗号化されたZIPは受け付けません: {info.filename}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Refused(f"ZIPの圧縮形式に対応していません（deflate で圧縮してください）: {info.filename}")
        if info.filename.lower().endswith(".zip"):
            raise Refused(f"ZIPの中のZIPは受け付けません。展開してから1つのZIPにまとめてください: {info.filename}")
    for info in infos:
        if info.is_dir():
            continue
        if not info.filename.lower().endswith(".xml"):
            yield Entry(info.filename, problem="XMLファイル（.xml）ではないため読みませんでした。")
            continue
        yield Entry(info.filename, data=_inflate(archive, info))


def count_entries(file) -> int:
    """The files entries() gives for the archive in `file` (1 when it is refused as a whole)."""
    try:
        infos = zipfile.ZipFile(file).infolist()
    except (zipfile.BadZipFile, OSError):
        return 1
    return max(1, sum(not info.is_dir() for info in infos)) if len(infos) <= MAX_ENTRIES else 1


def _inflate(archive, info) -> bytes:
    """The entry's bytes, at most MAX_FILE_BYTES whatever its header says; a corrupt entry is Refused."""
    parts, size = [], 0
    try:
        with archive.open(info) as part:
            while chunk := part.read(_CHUNK):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise Refused(f"ZIP内のファイルが大きすぎます（上限 {MAX_FILE_BYTES // (1024 * 1024)}MB）: "
                                  f"{info.filename}")
                parts.append(chunk)
    except Refused:
        raise
    except Exception:  # bad CRC, a deflate stream longer than its header says, truncated
        raise Refused(f"ZIPファイルが壊れています: {info.filename}") from None
    return b"".join(parts)
