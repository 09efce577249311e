"""Upload guards shared by every importer: magic bytes, ZIP bomb limits, safe XML parsing."""
import functools
import io
import itertools
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


DTD_REFUSED = "XML に DOCTYPE や実体宣言は使えません。"
XML_PART_NAMES = (".xml", ".rels", ".vml")


class _RootReached(Exception):
    pass


class _Prolog:
    """lxml parser target for refuse_dtd: a DTD can only stand before the root element, so parsing stops there."""

    def doctype(self, *args):
        raise UnsafeFile(DTD_REFUSED)

    def start(self, *args):
        raise _RootReached

    def close(self):
        pass


def refuse_dtd(chunks):
    """Raise UnsafeFile if the XML has a DOCTYPE (so any entity declaration), in whatever encoding it is written.

    chunks: the document's bytes in pieces; only its prolog is read. A parser reads it, not a byte search, so a
    UTF-16 DOCTYPE is found too. An XML syntax error before the root element is raised as lxml's XMLSyntaxError:
    the prolog could not be read, so the document cannot be vouched for.
    """
    parser = etree.XMLParser(target=_Prolog(), resolve_entities=False, load_dtd=False, no_network=True,
                             huge_tree=False)
    try:
        for chunk in chunks:
            parser.feed(chunk)
        parser.close()  # no root element at all: raises XMLSyntaxError
    except _RootReached:
        pass


def check_xml_parts(data: bytes, chunk_size=64 * 1024):
    """refuse_dtd for every part of the ZIP (check_zip first) that is or may be XML: openpyxl follows relationships,
    so a worksheet may be named anything. Images and printer settings are left alone."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    for info in archive.infolist():
        with archive.open(info) as part:
            head = part.read(chunk_size)
            if not head:
                continue  # nothing to parse, nothing to expand
            named_xml = info.filename.lower().endswith(XML_PART_NAMES)
            # "<" (or nothing yet) past a BOM (UTF-8, -16 or -32), the NULs of UTF-16/32 and white space: what expat
            # and libxml2 would take for a document
            looks_xml = head.lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n")[:1] in (b"<", b"")
            if named_xml or looks_xml:
                refuse_dtd(itertools.chain([head], iter(functools.partial(part.read, chunk_size), b"")))


def parse_xml(data: bytes):
    """XML without DOCTYPE, entities or network access."""
    refuse_dtd([data])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(data, parser)
