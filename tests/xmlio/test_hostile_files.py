"""The hostile corpus (tests/data/hostile, made by its make.py, plus files too big to keep made here): every file is
refused by nanbyo.xmlio with a Japanese message, within 2 s and 100 MB, and nothing connects to the listener the
files point at. Good files still read, in UTF-8 and in a declared Shift_JIS."""
import io
import json
import re
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from nanbyo.xmlio import archive, reader
from tests.data.hostile.make import DOC, FILES, LISTENER, ZIPS, zipped

HOSTILE = Path(__file__).resolve().parent.parent / "data" / "hostile"
ROOT = HOSTILE.parent.parent.parent
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def read_everything(name: str, data: bytes):
    """What an import does with an upload: a ZIP's XML entries, or the file itself, read to the end."""
    if archive.is_zip(data):
        for entry in archive.entries(io.BytesIO(data)):
            if entry.data is not None:
                for _element in reader.iter_elements(entry.data, "document"):
                    pass
        return
    for _element in reader.iter_elements(data, "document"):
        pass


def big_files():
    """Hostile files too large to keep in the repository."""
    return {
        "huge_text_node.xml": ("<documents><document><note>" + "あ" * 10_000_000 + "</note></document></documents>")
        .encode(),
        "too_many_elements.xml": b"<documents>" + b"<a/>" * (reader.MAX_ELEMENTS + 1) + b"</documents>",
        "over_size_limit.xml": b"<documents>" + b" " * reader.MAX_FILE_BYTES + b"</documents>",
        "zip_too_many_entries.zip": zipped([(f"d/{i}.xml", b"") for i in range(archive.MAX_ENTRIES + 1)],
                                           zipfile.ZIP_STORED),
    }


@pytest.fixture(scope="module")
def listener():
    """A server on the port the corpus points at, counting connections."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("127.0.0.1", LISTENER))
    except OSError:
        pytest.skip(f"port {LISTENER} is taken")
    server.listen(16)
    server.settimeout(0.2)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                seen.append(1)
                connection.close()
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join()
    server.close()


def test_the_corpus_on_disk_is_what_make_py_writes():
    on_disk = {p.name for p in HOSTILE.iterdir() if p.suffix in (".xml", ".zip")}
    assert on_disk == set(FILES) | set(ZIPS) and len(on_disk) + len(big_files()) >= 40
    for name, data in {**FILES, **ZIPS}.items():
        assert (HOSTILE / name).read_bytes() == data, name


@pytest.mark.parametrize("name", sorted(set(FILES) | set(ZIPS)))
def test_each_file_is_refused_in_japanese(name, listener):
    data = (HOSTILE / name).read_bytes()
    with pytest.raises(reader.Refused) as refused:
        read_everything(name, data)
    assert JAPANESE.search(refused.value.message), (name, refused.value.message)
    assert listener == [], f"{name}: something connected to the listener"


@pytest.mark.parametrize("name", sorted(big_files()))
def test_each_big_file_is_refused_in_japanese(name):
    with pytest.raises(reader.Refused) as refused:
        read_everything(name, big_files()[name])
    assert JAPANESE.search(refused.value.message), (name, refused.value.message)


MEASURE = """
import io, json, resource, sys, time
sys.path.insert(0, {root!r})
from tests.xmlio.test_hostile_files import big_files, read_everything
from nanbyo.xmlio.reader import Refused
from pathlib import Path
names = sys.argv[1:]
files = big_files()
out = {{}}
for name in names:
    data = files[name] if name in files else Path({hostile!r}, name).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        read_everything(name, data)
        refused = False
    except Refused:
        refused = True
    out[name] = [refused, time.perf_counter() - started,
                 (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024]
    del data
print(json.dumps(out))
"""


@pytest.mark.parametrize("names", [sorted(set(FILES) | set(ZIPS)), ["huge_text_node.xml"],
                                   ["too_many_elements.xml"], ["over_size_limit.xml"], ["zip_too_many_entries.zip"]])
def test_refusals_take_under_2_seconds_and_100_mb(names):
    """Each in a process of its own (its peak RSS is the file's alone), the file itself not counted: the upload is
    held in memory anyway (MAX_CONTENT_LENGTH)."""
    script = MEASURE.format(root=str(ROOT), hostile=str(HOSTILE))
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for name, (refused, seconds, rise_mb) in json.loads(result.stdout).items():
        assert refused, name
        assert seconds < 2.0, f"{name}: {seconds:.2f} s"
        assert rise_mb < 100, f"{name}: +{rise_mb:.0f} MB"


# --- what is read -------------------------------------------------------------------------------------------------

DOCUMENT = "document"


def documents_of(data):
    return [element.findtext("note") for element in reader.iter_elements(data, DOCUMENT)
            if element.tag == DOCUMENT]


def test_utf8_and_declared_shift_jis_read_alike():
    body = DOC.format("<note>髙橋①㈱ 東京都</note>")
    utf8 = documents_of(('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode())
    bom = documents_of(b"\xef\xbb\xbf" + body.encode())
    sjis = documents_of(('<?xml version="1.0" encoding="Shift_JIS"?>\n' + body).encode("cp932"))
    windows = documents_of(('<?xml version="1.0" encoding="Windows-31J"?>\n' + body).encode("cp932"))
    assert utf8 == bom == sjis == windows == ["髙橋①㈱ 東京都"]


def test_elements_are_streamed_and_dropped():
    data = ("<documents>" + "".join(
        f"<document><note>{i}</note></document>" for i in range(1000)) + "</documents>").encode()
    seen = []
    for element in reader.iter_elements(data, DOCUMENT):
        if element.tag != DOCUMENT:
            break  # the root, last
        seen.append(element.findtext("note"))
        assert element.getprevious() is None  # the documents before it are gone
    assert seen == [str(i) for i in range(1000)]


def test_refusals_name_the_line():
    data = b'<?xml version="1.0" encoding="UTF-8"?>\n<documents>\n<a>\n' + b"\xe6\x82" + b"</a></documents>"
    with pytest.raises(reader.Refused) as refused:
        reader.parse(data)
    assert refused.value.line == 4 and "UTF-8 として読めない文字" in refused.value.message
    with pytest.raises(reader.Refused) as refused:
        reader.parse(b"<documents>\n<a>\n</b></documents>")
    assert refused.value.line == 3 and str(refused.value).startswith("3行目: XMLとして読めません")


def test_a_zip_reports_what_it_does_not_read():
    data = zipped([("folder/", b""), ("a.xml", b"<a/>"), ("readme.txt", b"hello")])
    entries = list(archive.entries(io.BytesIO(data)))
    assert [(e.name, e.data, e.problem is not None) for e in entries] == [("a.xml", b"<a/>", False),
                                                                          ("readme.txt", None, True)]


# --- each rule in both ways of reading ------------------------------------------------------------------------------

# A comment of MAX_ELEMENTS '<a' makes a small file look as if it may hold too many elements: it is read the slow
# way, each element checked as it is read (reader._iter_counted); without it, the fast way (a tree at a time).
SLOW = "<!--" + "<a" * reader.MAX_ELEMENTS + "-->"
LONG = "x" * (reader.MAX_TEXT_CHARS + 1)
RULE_BREAKERS = {
    "text": (f"<note>{LONG}</note>", "文字列が長すぎます"),
    "text of &amp; and CDATA": (f"<note>{LONG[:15_000]}&amp;<![CDATA[{LONG[:5_000]}]]></note>", "文字列が長すぎます"),
    "tail": (f"<note><b/>{LONG}</note>", "文字列が長すぎます"),
    "text around a comment": (f"<note>{LONG[:15_000]}<!-- -->{LONG[:15_000]}</note>", "文字列が長すぎます"),
    "text around a processing instruction": (f"<note>{LONG[:15_000]}<?pi x?>{LONG[:15_000]}</note>",
                                             "文字列が長すぎます"),
    "text of references": (f"<note>{'&#x3042;' * (reader.MAX_TEXT_CHARS + 1)}</note>", "文字列が長すぎます"),
    "xinclude": ('<note><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="x"/></note>', "XInclude"),
    "xinclude, escaped": ('<note><xi:include xmlns:xi="http://www.w3.org/2001/&#88;Include" href="x"/></note>',
                          "XInclude"),
    "schemaLocation": ('<note xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="a b"/>',
                       "schemaLocation"),
}


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("where", ["in a document", "between documents", "after the documents"])
@pytest.mark.parametrize("rule", sorted(RULE_BREAKERS))
def test_every_rule_holds_in_both_ways_of_reading(rule, where, slow):
    breaker, message = RULE_BREAKERS[rule]
    good = "<document><note>1</note></document>"
    body = {"in a document": good + f"<document>{breaker}</document>" + good,
            "between documents": good + breaker + good,
            "after the documents": good + good + breaker}[where]
    data = f"<documents>{SLOW if slow else ''}{body}</documents>".encode()
    assert (reader._element_bound(reader.as_utf8(data)) > reader.MAX_ELEMENTS) == slow
    with pytest.raises(reader.Refused) as refused:
        documents_of(data)
    assert message in refused.value.message
    assert documents_of(f"<documents>{SLOW if slow else ''}{good}{good}</documents>".encode()) == ["1", "1"]


def test_a_rule_broken_between_documents_is_refused_before_the_next_document():
    """What lies between documents is checked before the next one is handed over, as each element is read."""
    data = (f"<documents><document><note>1</note></document><note>{LONG}</note>"
            "<document><note>2</note></document></documents>").encode()
    seen = []
    with pytest.raises(reader.Refused):
        for element in reader.iter_elements(data, DOCUMENT):
            seen.append(element.findtext("note"))
    assert seen == ["1"]


def test_the_element_bound_is_never_below_the_elements():
    data = ('<?xml version="1.0"?><documents a="&lt;b"><!-- <c> --><?pi <d?><document><![CDATA[<e>]]>'
            "<note>1 &lt; 2</note><x/></document></documents>").encode()
    assert reader._element_bound(data) >= len(list(reader.parse(data).iter())) == 4
    exact = b"<documents>" + b"<a/>" * reader.MAX_ELEMENTS + b"</documents>"
    assert reader._element_bound(exact) == reader.MAX_ELEMENTS + 1
