"""Reading XML from outside safely: a file a hospital system wrote, or one made to harm the server.

What a file must be before anything of it is used (each refusal a Japanese message with the line where it is known):
- at most MAX_FILE_BYTES; UTF-8 (with or without BOM) or a declared Shift_JIS (read as CP932, as Japanese Windows
  writes it); any other encoding, a lie about the encoding and bytes that are not text are refused by name;
- no DOCTYPE (so no entity of any kind: no XXE, no billion laughs, no quadratic blowup), found by a parser whatever
  the encoding (safe_files.refuse_dtd); no XInclude element; no schemaLocation (the schemas are the application's
  own); nothing is fetched (no network, no DTD);
- elements nested at most MAX_DEPTH deep, at most MAX_ELEMENTS per file, text of at most MAX_TEXT_CHARS per node
  (libxml2 itself refuses a text node over 10 MB).

Elements are read as a stream (iter_elements): each one asked for is handed over whole, then dropped, so a file of
10,000 documents never is one tree in memory. A file whose bytes show it cannot hold more than MAX_ELEMENTS elements
is checked a tree at a time (each part of it before it is handed over or dropped); any other, an element at a time.
"""
import codecs
import io
import re

from lxml import etree

from nanbyo.safe_files import DTD_REFUSED, UnsafeFile, refuse_dtd

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_DEPTH = 256  # libxml2's own limit (without XML_PARSE_HUGE), which refuses deeper files as it reads
MAX_ELEMENTS = 500_000  # ~2,500 documents: a larger batch comes as several files (in one ZIP)
MAX_TEXT_CHARS = 20_000
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
_SCHEMA_LOCATIONS = (_XSI + "schemaLocation", _XSI + "noNamespaceSchemaLocation")

# What a declaration may name, as Python's codec names them: UTF-8, or Shift_JIS read as CP932 (its Windows form,
# which hospital systems write and which holds the characters Shift_JIS lacks: ①, ㈱, 髙 …).
_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932",
              "x-sjis": "cp932", "cp932": "cp932", "windows-31j": "cp932", "ms932": "cp932"}
_DECLARATION = re.compile(rb"""\A<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
         (codecs.BOM_UTF16_BE, "UTF-16"))


class Refused(Exception):
    """The file is not read: `message` says why in Japanese, `line` where (None: the whole file)."""

    def __init__(self, message, line=None):
        super().__init__(message)
        self.message, self.line = message, line

    def __str__(self):
        return f"{self.line}行目: {self.message}" if self.line else self.message


def _line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


def as_utf8(data: bytes) -> bytes:
    """The file's text as UTF-8, its declaration saying so; Refused for what is not UTF-8 or a declared Shift_JIS."""
    if len(data) > MAX_FILE_BYTES:
        raise Refused(f"ファイルが大きすぎます（上限 {MAX_FILE_BYTES // (1024 * 1024)}MB）。ファイルを分けてください。")
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise Refused(f"文字コード {name} のファイルは受け付けません。UTF-8 または Shift_JIS で出力してください。")
    if data[:4] in (b"<\x00?\x00", b"\x00<\x00?") or data[:1] == b"\x00":
        raise Refused("文字コード UTF-16 のファイルは受け付けません。UTF-8 または Shift_JIS で出力してください。")
    body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    declared = _DECLARATION.match(body)
    name = declared.group(1).decode("ascii").lower() if declared else "utf-8"
    encoding = _ENCODINGS.get(name)
    if encoding is None:
        raise Refused(f"文字コード {declared.group(1).decode('ascii')} は受け付けません。"
                      "UTF-8 または Shift_JIS で出力してください。", 1)
    if encoding == "cp932" and (data.startswith(codecs.BOM_UTF8) or _is_utf8_text(body)):
        # Shift_JIS read from UTF-8 bytes rarely fails: it yields wrong characters instead. Text with non-ASCII
        # characters that is valid UTF-8 is UTF-8 (Japanese Shift_JIS text practically never is).
        raise Refused("Shift_JIS と宣言されていますが、中身は UTF-8 です。XML宣言の encoding と実際の文字コードを"
                      "合わせてください。", 1)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as e:
        label = "UTF-8" if encoding == "utf-8" else "Shift_JIS"
        raise Refused(f"{label} として読めない文字があります（{e.start + 1}バイト目付近）。"
                      "XML宣言の encoding と実際の文字コードを合わせてください。",
                      _line_of(body, e.start)) from None
    if declared:
        # The text is UTF-8 now: so says the declaration the parser reads (same length, lines unchanged).
        start, end = declared.span(1)
        text = text[:start] + "UTF-8" + text[end:] if encoding != "utf-8" else text
    return text.encode("utf-8")


def _is_utf8_text(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse_dtd(data: bytes):
    try:
        refuse_dtd([data])
    except UnsafeFile:
        raise Refused("DOCTYPE宣言（DTD・実体宣言）を含むXMLは受け付けません。出力設定からDOCTYPEを外してください。") from None
    except etree.XMLSyntaxError as e:
        raise Refused(f"XMLとして読めません（{_syntax_text(e)}）。", e.lineno or None) from None


def _syntax_text(error) -> str:
    """lxml's message without its position (given as the line)."""
    return re.sub(r",? line \d+, column \d+", "", str(error.msg or error)).strip() or "構文エラー"


def iter_elements(data: bytes, tag: str):
    """Each element named `tag` (Clark notation: {namespace}name) of the file, whole, as it is read; its content is
    dropped after the caller is done with it. The root element is yielded last, emptied of what was yielded.
    Refused when the file breaks a rule above (rows already yielded stay yielded: callers check the whole file
    first or keep their work in one transaction)."""
    data = as_utf8(data)
    _refuse_dtd(data)
    if _element_bound(data) > MAX_ELEMENTS:
        yield from _iter_counted(data, tag)
        return
    # At most MAX_ELEMENTS elements: libxml2 hands over only the `tag` elements, and each part of the tree is
    # checked whole before it is handed over or dropped (a Python step per element read costs more than the parse).
    locations = b"chemaLocation" in data  # an attribute's name holds no character reference: absent, none to find
    texts = _may_hold_long_text(data)
    try:
        context = etree.iterparse(io.BytesIO(data), events=("end",) if tag else (), tag=tag, **_PARSER_OPTIONS)
        for _event, element in context:
            parent = element.getparent()
            while (previous := element.getprevious()) is not None:
                _check_tree(previous, locations, texts)
                del parent[0]
            _check_tree(element, locations, texts)
            yield element
            element.clear(keep_tail=False)
        root = context.root
        _check_tree(root, locations, texts)
        if root.tag != tag:
            yield root  # the root, last
    except etree.XMLSyntaxError as e:
        raise _syntax_refusal(e) from None


_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                       remove_comments=True, remove_pis=True)


def _element_bound(data: bytes) -> int:
    """At most how many elements the (UTF-8) file holds: each needs a start tag, a '<' that opens no end tag, comment,
    CDATA section or processing instruction (without a DTD no entity makes one; '<' is one byte in UTF-8)."""
    bound = data.count(b"<")
    if bound <= MAX_ELEMENTS:
        return bound  # within the limit already: the closer count reads the file three times more
    return bound - data.count(b"</") - data.count(b"<!") - data.count(b"<?")


_LONG_RUN = re.compile(b"<[^<]{%d}" % (MAX_TEXT_CHARS + 1))


def _may_hold_long_text(data: bytes) -> bool:
    """Whether a text of the (UTF-8) file may be longer than MAX_TEXT_CHARS. A text lies between two tags, and is
    never longer (in characters) than its bytes, references included; unless a comment, CDATA section or processing
    instruction (removed or merged as read) joins two of them: then every text is measured (_check_tree)."""
    return b"<!" in data or data.find(b"<?", 1) != -1 or _LONG_RUN.search(data) is not None


def _check_tree(element, locations=True, texts=True):
    """Refused for the first node of `element`'s tree that breaks a rule above (its own tail included); `locations`
    False: the file has no schemaLocation; `texts` False: no text of the file is too long (_may_hold_long_text)."""
    # Every text and tail of the tree measured in C; the node named only when one is too long.
    if texts and (max(map(len, element.itertext()), default=0) > MAX_TEXT_CHARS
                  or len(element.tail or "") > MAX_TEXT_CHARS):
        for node in element.iter():
            for text in (node.text, node.tail):
                if text and len(text) > MAX_TEXT_CHARS:
                    raise _text_too_long(node.sourceline)
        raise _text_too_long(element.sourceline)
    if locations:
        for node in element.iter():
            _check_attributes(node)
    for node in element.iter(_XINCLUDE_ANY):
        raise _xinclude_refused(node.sourceline)


_XINCLUDE_ANY = "{" + XINCLUDE_NS + "}*"


def _check_attributes(element):
    if any(name in element.attrib for name in _SCHEMA_LOCATIONS):
        raise Refused("schemaLocation は指定しないでください（検査にはこのシステムのスキーマを使います）。",
                      element.sourceline)


def _text_too_long(line) -> Refused:
    return Refused(f"文字列が長すぎます（1項目 {MAX_TEXT_CHARS:,} 文字まで）。", line)


def _xinclude_refused(line) -> Refused:
    return Refused("XInclude は使えません。", line)


def _syntax_refusal(e) -> Refused:
    if "depth" in str(e.msg or e).lower():
        return Refused(f"要素の入れ子が深すぎます（上限 {MAX_DEPTH} 段）。", e.lineno or None)
    return Refused(f"XMLとして読めません（{_syntax_text(e)}）。", e.lineno or None)


def _iter_counted(data: bytes, tag: str):
    """iter_elements for a file that may hold more than MAX_ELEMENTS elements: each one checked as it is read."""
    elements = 0
    try:
        for _event, element in etree.iterparse(io.BytesIO(data), events=("end",), **_PARSER_OPTIONS):
            elements += 1
            if elements > MAX_ELEMENTS:
                raise Refused(f"要素が多すぎます（1ファイル {MAX_ELEMENTS:,} まで）。ファイルを分けてください。",
                              element.sourceline)
            if isinstance(element.tag, str) and element.tag.startswith("{" + XINCLUDE_NS + "}"):
                raise _xinclude_refused(element.sourceline)
            _check_attributes(element)
            # A tail is read after its element ends: whole once the next sibling or the parent ends.
            previous = element.getprevious()
            last = element[-1] if len(element) else None
            for text in (element.text, element.tail, previous is not None and previous.tail,
                         last is not None and last.tail):
                if text and len(text) > MAX_TEXT_CHARS:
                    raise _text_too_long(element.sourceline)
            if element.tag == tag:
                # The elements handed over before this one (emptied) go: the tree keeps what is being read.
                while element.getprevious() is not None:
                    del element.getparent()[0]
                yield element
                element.clear(keep_tail=False)
            elif element.getparent() is None:
                yield element  # the root, last
    except etree.XMLSyntaxError as e:
        raise _syntax_refusal(e) from None


def parse(data: bytes):
    """The whole file as one element tree, under the same rules (for files of one document)."""
    root = None
    for element in iter_elements(data, tag=None):
        root = element
    return root


__all__ = ["DTD_REFUSED", "MAX_DEPTH", "MAX_ELEMENTS", "MAX_FILE_BYTES", "MAX_TEXT_CHARS", "Refused", "as_utf8",
           "iter_elements", "parse"]
