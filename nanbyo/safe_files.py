"""Upload guards shared by every importer: magic bytes, ZIP bomb limits, safe XML parsing."""
import io
import zipfile

from lxml import etree

ZIP_MAGIC = b"PK\x03\x04"


class UnsafeFile(ValueError):
    pass


def check_zip(data: bytes, *, max_entries=100, max_total=50 * 1024 * 1024, max_ratio=100):
    """Refuse a ZIP container (xlsx) before anything unpacks it: entry count, total size and ratio limits."""
    if not data.startswith(ZIP_MAGIC):
        raise UnsafeFile("ファイルの形式が xlsx ではありません。")
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile as e:
        raise UnsafeFile("xlsx ファイルが壊れています。") from e
    if len(infos) > max_entries:
        raise UnsafeFile("xlsx ファイルの構成要素が多すぎます。")
    total = 0
    for info in infos:
        total += info.file_size
        if total > max_total:
            raise UnsafeFile("xlsx ファイルの展開後のサイズが大きすぎます。")
        if info.file_size > 1024 * 1024 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise UnsafeFile("xlsx ファイルの圧縮率が異常です（ZIP 爆弾の疑い）。")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2/LZMA inflate a whole read at once, without a limit; xlsx uses deflate.
            raise UnsafeFile("xlsx ファイルの圧縮形式に対応していません。")
    # The sizes above are only what the headers claim, and ZipFile.read() inflates a part in one call however big
    # it really is. Inflate every part once in small chunks: zipfile stops at the claimed size and then checks the
    # CRC, so a part that lies about its size is refused here rather than blowing up in openpyxl.
    archive = zipfile.ZipFile(io.BytesIO(data))
    try:
        for info in infos:
            with archive.open(info) as part:
                while part.read(64 * 1024):
                    pass
    except Exception as e:  # bad CRC, truncated or corrupt deflate stream, encrypted part
        raise UnsafeFile("xlsx ファイルが壊れています。") from e
    return infos


def parse_xml(data: bytes):
    """XML without DOCTYPE, entities or network access."""
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise UnsafeFile("XML に DOCTYPE や実体宣言は使えません。")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(data, parser)
