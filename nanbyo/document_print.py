"""Printing a 医療意見書 / 臨床調査個人票 on A4, and the アクセスキー sheet a patient may hand in instead.

`render_document_pdf` prints the whole document: as many pages as its items need (long sections flow on, their
heading row repeated), the access key in large type and as a QR code on the first page, the form title and the key
in every page header, the document's uid and "n/N" in every footer. A document that is not finalized has no key
yet: it is printed with a 「下書き（確定前）」 banner and watermark and without a QR code.

`render_key_sheet_pdf` prints one page with only the key (text and QR), the form title, 作成年月日 and 診断年月日:
no patient, disease or doctor, because that sheet travels on its own and can go astray.

Fonts as in nanbyo.notices: reportlab's built-in CID fonts, nothing downloaded or embedded; the key in Courier.
The PDF metadata holds neither the key nor any patient data.
"""
import io
from dataclasses import dataclass
from datetime import date

import segno
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (BaseDocTemplate, CondPageBreak, Flowable, Frame, KeepTogether, PageTemplate,
                                Paragraph, Spacer, Table, TableStyle)

from nanbyo.notices import (GOTHIC, MARGIN, MINCHO, MONO, MONO_BOLD, PAGE_HEIGHT, PAGE_WIDTH, CONTENT_WIDTH,
                            FOOTER_Y, both_dates, markup_text, paragraph_style, printable, register_fonts)

AUTHOR = "難病・小慢データベース"
KINDS = ("shoman", "nanbyo")
KEY_SHEET_HEADING = "アクセスキー（申請書類の電子データ照会用）"
SUBMIT_NOTE = "この書類のアクセスキーを申請窓口に提出してください。"
DRAFT_LABEL = "下書き（確定前）"
NOT_RECORDED = "―（記載なし）"

HEADER_Y = PAGE_HEIGHT - 13 * mm
FRAME_TOP = PAGE_HEIGHT - 19 * mm
FRAME_BOTTOM = FOOTER_Y + 8 * mm

# A QR code (never a Micro QR: phone readers and most handheld scanners do not read those) with the standard quiet
# zone of 4 modules; the symbol itself is at least 25 mm wide.
QR_QUIET_ZONE = 4
QR_SYMBOL_SIZE = 26 * mm
QR_SHEET_SYMBOL_SIZE = 34 * mm

# A table row cannot be split across pages: a long value is cut into pieces of at most this many characters / lines,
# each its own row, so that any row fits on a page.
CHUNK_CHARS = 300
CHUNK_LINES = 10

GRID = colors.HexColor("#404040")
SHADE = colors.HexColor("#E8E8E8")
HEAD_SHADE = colors.HexColor("#D4D4D4")
DRAFT_RED = colors.HexColor("#B00000")

STYLES = {
    "title": paragraph_style("dp-title", font=GOTHIC, size=15, leading=20),
    "subtitle": paragraph_style("dp-subtitle", font=GOTHIC, size=10.5, leading=15),
    "sheet-heading": paragraph_style("dp-sheet-heading", font=GOTHIC, size=15, leading=21, alignment=TA_CENTER),
    "sheet-form": paragraph_style("dp-sheet-form", font=GOTHIC, size=12.5, leading=18, alignment=TA_CENTER),
    "key-label": paragraph_style("dp-key-label", font=GOTHIC, size=10, leading=14),
    "key": paragraph_style("dp-key", font=MONO_BOLD, size=28, leading=34),
    "key-sheet": paragraph_style("dp-key-sheet", font=MONO_BOLD, size=34, leading=42, alignment=TA_CENTER),
    "head": paragraph_style("dp-head", font=GOTHIC, size=10.5, leading=14),
    "label": paragraph_style("dp-label", font=GOTHIC, size=9, leading=12.5),
    "value": paragraph_style("dp-value", size=9.5, leading=13.5),
    "small": paragraph_style("dp-small", size=8.5, leading=12),
    "note": paragraph_style("dp-note", size=9, leading=13, leftIndent=3.5 * mm, firstLineIndent=-3.5 * mm),
    "draft": paragraph_style("dp-draft", font=GOTHIC, size=9, leading=12, textColor=DRAFT_RED),
    "draft-key": paragraph_style("dp-draft-key", font=GOTHIC, size=22, leading=34, textColor=DRAFT_RED),
    "signature": paragraph_style("dp-signature", size=11, leading=15),
}


@dataclass
class PrintableDocument:
    form_title: str              # "小児慢性特定疾病 医療意見書" or "臨床調査個人票"
    kind: str                    # "shoman" | "nanbyo"
    application_kind_label: str  # 新規 / 更新 / 変更
    disease_label: str           # e.g. "告示番号2 筋萎縮性側索硬化症"
    access_key: str              # "" while not finalized: printed as a draft, without QR code
    written_on: date             # 作成年月日
    diagnosed_on: date | None    # 診断年月日
    patient_rows: list[tuple[str, str]]                  # (label, value), values already formatted
    sections: list[tuple[str, list[tuple[str, str]]]]  # (section title, [(label, value)]); values may be multi-line
    doctor_name: str
    doctor_designation: str      # "難病指定医 13-N-0002"
    institution_name: str
    institution_code: str
    institution_address: str
    destination_name: str        # 提出先 自治体
    explained_on: date | None    # DB登録についての説明日
    document_uid: str            # printed small in each footer


# --- text --------------------------------------------------------------------------------------------------------

def _markup(value: str) -> str:
    """User text as Paragraph markup: escaped (so < and & print as written), line breaks kept."""
    return "<br/>".join(markup_text(line) for line in printable(value).split("\n"))


def _para(value: str, style: str = "value") -> Paragraph:
    return Paragraph(_markup(value), STYLES[style])


def _date(d: date | None) -> str:
    return both_dates(d) if d else NOT_RECORDED


def group_key(key: str) -> str:
    """7KQ3WXPM → "7KQ3 WXPM": groups of four, for reading the key off paper."""
    return " ".join(key[i:i + 4] for i in range(0, len(key), 4))


def _check(doc: PrintableDocument):
    if doc.kind not in KINDS:
        raise ValueError(f"書類の種別が不正です: {doc.kind!r}")
    key = doc.access_key or ""
    if key and not (key.isascii() and key.isalnum() and len(key) <= 32):
        raise ValueError("アクセスキーは英数字で指定してください。")


def _chunks(value: str) -> list[str]:
    """A long value cut at line ends (inside a line only when the line itself is too long) into row-sized pieces."""
    pieces, lines, size = [], [], 0
    for line in printable(value).split("\n") or [""]:
        parts = [line[i:i + CHUNK_CHARS] for i in range(0, len(line), CHUNK_CHARS)] or [""]
        for part in parts:
            if lines and (size + len(part) > CHUNK_CHARS or len(lines) >= CHUNK_LINES):
                pieces.append("\n".join(lines))
                lines, size = [], 0
            lines.append(part)
            size += len(part)
    pieces.append("\n".join(lines))
    return pieces


# --- the QR code -------------------------------------------------------------------------------------------------

def make_qr(key: str) -> segno.QRCode:
    """The QR code of exactly `key`: error correction M at least (segno raises it when that costs no size)."""
    return segno.make(key, error="m", micro=False)


def _qr_width(symbol_size: float, modules: int = 21) -> float:
    """The width of a QR code with its quiet zone (21 modules: version 1, which an 8-character key needs)."""
    return symbol_size * (modules + 2 * QR_QUIET_ZONE) / modules


class QRCodeFlowable(Flowable):
    """The QR code drawn as vector modules (one filled path: no seams between modules) on a white quiet zone."""

    def __init__(self, key: str, symbol_size: float = QR_SYMBOL_SIZE):
        super().__init__()
        self.key = key
        self.qr = make_qr(key)
        self.modules = len(self.qr.matrix)
        self.module_size = symbol_size / self.modules
        self.width = self.height = _qr_width(symbol_size, self.modules)

    def wrap(self, available_width, available_height):
        return self.width, self.height

    def draw(self):
        c, m = self.canv, self.module_size
        c.saveState()
        c.setFillColor(colors.white)
        c.rect(0, 0, self.width, self.height, stroke=0, fill=1)
        path = c.beginPath()
        for row, cells in enumerate(self.qr.matrix):
            y = self.height - (QR_QUIET_ZONE + row + 1) * m
            col = 0
            while col < self.modules:
                if cells[col]:
                    start = col
                    while col < self.modules and cells[col]:
                        col += 1
                    path.rect((QR_QUIET_ZONE + start) * m, y, (col - start) * m, m)
                else:
                    col += 1
        c.setFillColor(colors.black)
        c.drawPath(path, stroke=0, fill=1)
        c.restoreState()


# --- tables ------------------------------------------------------------------------------------------------------

def _table_style(header: bool, extra=()) -> TableStyle:
    commands = [
        ("GRID", (0, 0), (-1, -1), 0.5, GRID),
        ("BOX", (0, 0), (-1, -1), 0.9, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 2 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 1.1 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.1 * mm),
    ]
    if header:
        commands += [("SPAN", (0, 0), (-1, 0)), ("BACKGROUND", (0, 0), (-1, 0), HEAD_SHADE)]
    return TableStyle(commands + list(extra))


def _rows_table(title: str, rows: list[tuple[str, str]], label_width: float = 42 * mm) -> Table:
    """A block with a heading row (repeated on the next page when the block is split) and label/value rows."""
    data = [[Paragraph(_markup(title), STYLES["head"]), ""]]
    for label, value in rows or [("", "")]:
        for number, piece in enumerate(_chunks(value)):
            shown = label if number == 0 else f"{label}（続き）" if label else "（続き）"
            data.append([_para(shown, "label"), _para(piece)])
    if not rows:
        data[1] = [_para("", "label"), _para(NOT_RECORDED)]
    table = Table(data, colWidths=[label_width, CONTENT_WIDTH - label_width], repeatRows=1)
    table.setStyle(_table_style(True, [("BACKGROUND", (0, 1), (0, -1), SHADE), ("VALIGN", (0, 1), (0, -1), "TOP")]))
    return table


def _paired_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """Like _rows_table, but two short items share a line (氏名 | カナ, 性別 | 生年月日) to keep page 1 compact."""
    label_w, value_w = 28 * mm, CONTENT_WIDTH / 2 - 28 * mm
    data = [[Paragraph(_markup(title), STYLES["head"]), "", "", ""]]
    extra = []

    def short(row):
        return "\n" not in row[1] and len(printable(row[1])) <= 16 and len(printable(row[0])) <= 8

    i = 0
    while i < len(rows):
        label, value = rows[i]
        if i + 1 < len(rows) and short(rows[i]) and short(rows[i + 1]):
            label2, value2 = rows[i + 1]
            data.append([_para(label, "label"), _para(value), _para(label2, "label"), _para(value2)])
            extra.append(("BACKGROUND", (2, len(data) - 1), (2, len(data) - 1), SHADE))
            i += 2
            continue
        for number, piece in enumerate(_chunks(value)):
            shown = label if number == 0 else f"{label}（続き）"
            data.append([_para(shown, "label"), _para(piece), "", ""])
            extra.append(("SPAN", (1, len(data) - 1), (3, len(data) - 1)))
        i += 1
    if len(data) == 1:
        data.append([_para("", "label"), _para(NOT_RECORDED), "", ""])
        extra.append(("SPAN", (1, 1), (3, 1)))
    table = Table(data, colWidths=[label_w, value_w, label_w, value_w], repeatRows=1)
    table.setStyle(_table_style(True, [("BACKGROUND", (0, 1), (0, -1), SHADE)] + extra))
    return table


def _notes_box(title: str, notes: list[str]) -> Table:
    """Notes are trusted markup (our own sentences with escaped values in them)."""
    box = Table([[Paragraph(title, STYLES["head"])]] + [[Paragraph(n, STYLES["note"])] for n in notes],
                colWidths=[CONTENT_WIDTH])
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.9, colors.black),
        ("LEFTPADDING", (0, 0), (-1, -1), 3 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 0.4 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 0.4 * mm),
        ("TOPPADDING", (0, 0), (-1, 0), 1.5 * mm),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 1.8 * mm),
    ]))
    return box


# --- the document ------------------------------------------------------------------------------------------------

def _application_purpose(doc: PrintableDocument) -> str:
    if doc.kind == "shoman":
        return "小児慢性特定疾病の医療費助成の申請"
    return "指定難病の特定医療費（医療費助成）の申請"


def _first_block(doc: PrintableDocument) -> Table:
    """Title, 申請区分, 提出先 and the access key (large, with its QR code on the right)."""
    left = [
        _para(doc.form_title, "title"),
        Paragraph(f"申請区分：{_markup(doc.application_kind_label)}　　提出先：{_markup(doc.destination_name)}",
                  STYLES["subtitle"]),
        Spacer(1, 3 * mm),
        Paragraph("アクセスキー", STYLES["key-label"]),
    ]
    if doc.access_key:
        qr = QRCodeFlowable(doc.access_key)
        left += [Paragraph(markup_text(group_key(doc.access_key)), STYLES["key"]),
                 Paragraph(SUBMIT_NOTE, STYLES["small"])]
    else:  # the draft notice takes the key's place, so that a draft paginates like the finalized document
        qr = Spacer(1, 1)
        left += [Paragraph(DRAFT_LABEL, STYLES["draft-key"]),
                 Paragraph("この書類は確定されていません。アクセスキーは未発行で、申請には使用できません。",
                           STYLES["draft"])]
    qr_width = qr.width if doc.access_key else _qr_width(QR_SYMBOL_SIZE)  # the column as wide for a draft
    table = Table([[left, qr]], colWidths=[CONTENT_WIDTH - qr_width, qr_width])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("RIGHTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
        ("LINEBELOW", (0, 0), (-1, -1), 1.2, colors.black),
    ]))
    return table


def _signature(doc: PrintableDocument) -> Table:
    """上記のとおり診断します。 and the 記名 line: the doctor's name above a rule, right-aligned."""
    label = Paragraph("医師氏名（記名）", STYLES["label"])
    name = _para(doc.doctor_name, "signature")
    table = Table([[Paragraph("上記のとおり診断します。", STYLES["value"]), label, name]],
                  colWidths=[CONTENT_WIDTH - 100 * mm, 28 * mm, 72 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
        ("LINEBELOW", (1, 0), (2, 0), 0.8, colors.black),
        ("LEFTPADDING", (0, 0), (-1, -1), 1 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 5 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1 * mm),
    ]))
    return table


def _document_story(doc: PrintableDocument) -> list:
    gap = Spacer(1, 3 * mm)
    story = [_first_block(doc), gap]
    story += [_paired_table("患者情報", doc.patient_rows), gap]
    story += [_rows_table("疾病", [("疾病名", doc.disease_label), ("診断年月日", _date(doc.diagnosed_on)),
                                  ("作成年月日", _date(doc.written_on))]), gap]
    for title, rows in doc.sections:
        story += [CondPageBreak(25 * mm), _rows_table(title, rows), gap]
    story += [_rows_table("難病・小慢データベースへの登録について",
                          [("説明日", _date(doc.explained_on))]), gap]
    doctor = _paired_table("医療機関・指定医", [
        ("医療機関名", doc.institution_name), ("医療機関コード", doc.institution_code),
        ("所在地", doc.institution_address), ("指定医", doc.doctor_designation),
        ("作成年月日", _date(doc.written_on)),
    ])
    story += [KeepTogether([doctor, _signature(doc)]), gap]
    notes = [f"・{SUBMIT_NOTE}申請窓口（{_markup(doc.destination_name)}）では、このアクセスキーにより"
             "電子データを照会します。",
             "・アクセスキーは申請に必要です。申請まで大切に保管してください。"]
    if not doc.access_key:
        notes.insert(0, f"・この書類は{DRAFT_LABEL}です。確定するとアクセスキーが発行されます。")
    story.append(KeepTogether([_notes_box("ご注意", notes)]))
    return story


def _page_decoration(doc: PrintableDocument):
    key = doc.access_key

    def on_page(c, document):
        total = getattr(document, "total_pages", None) or "?"
        page = c.getPageNumber()
        c.saveState()
        if not key:  # the watermark first, so that everything else is drawn over it
            c.saveState()
            c.setFillColor(colors.HexColor("#E3E3E3"))
            c.setFont(GOTHIC, 64)
            c.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
            c.rotate(40)
            c.drawCentredString(0, -22, DRAFT_LABEL)
            c.restoreState()
        # Header: the form title on the left, the key on the right.
        c.setFont(GOTHIC, 8.5)
        c.drawString(MARGIN, HEADER_Y, printable(doc.form_title))
        if key:
            c.setFont(MONO_BOLD, 10)
            c.drawRightString(PAGE_WIDTH - MARGIN, HEADER_Y, key)
            c.setFont(GOTHIC, 8.5)
            c.drawRightString(PAGE_WIDTH - MARGIN - stringWidth(key, MONO_BOLD, 10) - 2 * mm, HEADER_Y,
                              "アクセスキー")
        else:
            c.setFillColor(DRAFT_RED)
            c.drawRightString(PAGE_WIDTH - MARGIN, HEADER_Y, f"アクセスキー 未発行　{DRAFT_LABEL}")
            c.setFillColor(colors.black)
        c.setLineWidth(0.4)
        c.line(MARGIN, HEADER_Y - 2 * mm, PAGE_WIDTH - MARGIN, HEADER_Y - 2 * mm)
        # Footer: the document uid, the database, the page.
        c.line(MARGIN, FOOTER_Y + 4 * mm, PAGE_WIDTH - MARGIN, FOOTER_Y + 4 * mm)
        c.setFont(MONO, 7.5)
        c.drawString(MARGIN, FOOTER_Y, printable(doc.document_uid))
        c.setFont(MINCHO, 8)
        c.drawCentredString(PAGE_WIDTH / 2, FOOTER_Y, AUTHOR)
        c.setFont(MINCHO, 9)
        c.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, f"{page}/{total}")
        c.restoreState()

    return on_page


def _build(story_factory, on_page, title: str, subject: str) -> tuple[bytes, int]:
    """Lays the story out twice: the first pass counts the pages for the footers' "n/N"."""
    register_fonts()
    total, pdf = None, b""
    for _ in range(3):  # the second pass has the same layout; a third only if the count changed
        out = io.BytesIO()
        frame = Frame(MARGIN, FRAME_BOTTOM, CONTENT_WIDTH, FRAME_TOP - FRAME_BOTTOM,
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0, id="body")
        template = PageTemplate(id="page", frames=[frame], onPage=on_page)
        document = BaseDocTemplate(out, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), pageTemplates=[template],
                                   leftMargin=MARGIN, rightMargin=MARGIN, topMargin=PAGE_HEIGHT - FRAME_TOP,
                                   bottomMargin=FRAME_BOTTOM, title=title, author=AUTHOR, subject=subject,
                                   creator="nanbyo", lang="ja-JP")
        document.total_pages = total
        document.build(story_factory())
        pdf, pages = out.getvalue(), document.page
        if pages == total:
            break
        total = pages
    return pdf, total


def render_document_pdf(doc: PrintableDocument) -> bytes:
    """The whole document on A4 pages; a draft (no access key) is marked 下書き and has no QR code."""
    _check(doc)
    pdf, _ = _build(lambda: _document_story(doc), _page_decoration(doc), title=printable(doc.form_title),
                    subject=f"{printable(doc.form_title)}（印刷用）")
    return pdf


# --- the key sheet -----------------------------------------------------------------------------------------------

def _key_sheet_story(doc: PrintableDocument) -> list:
    key = doc.access_key
    key_box = Table([[Paragraph("アクセスキー", STYLES["key-label"])],
                     [Paragraph(markup_text(group_key(key)), STYLES["key-sheet"])],
                     [QRCodeFlowable(key, QR_SHEET_SYMBOL_SIZE)]], colWidths=[CONTENT_WIDTH * 0.7])
    key_box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
        ("ALIGN", (0, 0), (-1, -1), "CENTER"),
        ("TOPPADDING", (0, 0), (-1, -1), 2 * mm),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 3 * mm),
    ]))
    dates = Table([[Paragraph(label, STYLES["label"]), Paragraph(markup_text(value), STYLES["signature"])]
                   for label, value in (("作成年月日", _date(doc.written_on)),
                                        ("診断年月日", _date(doc.diagnosed_on)))],
                  colWidths=[32 * mm, CONTENT_WIDTH * 0.7 - 32 * mm])
    dates.setStyle(_table_style(False, [("BACKGROUND", (0, 0), (0, -1), SHADE),
                                        ("TOPPADDING", (0, 0), (-1, -1), 2 * mm),
                                        ("BOTTOMPADDING", (0, 0), (-1, -1), 2 * mm)]))
    form = _markup(doc.form_title)
    notes = [
        f"・この用紙は、{_application_purpose(doc)}の際に、申請書とあわせて申請窓口に提出してください。",
        f"・申請窓口では、このアクセスキーにより、指定医が作成した{form}の電子データを照会します。"
        "作成年月日と診断年月日は、照会した書類との照合に使われます。",
        "・アクセスキーは申請に必要です。申請まで大切に保管してください。",
        "・この用紙には、氏名などの個人を特定する情報は記載されていません。",
    ]
    return [
        Spacer(1, 8 * mm),
        Paragraph(KEY_SHEET_HEADING, STYLES["sheet-heading"]),
        Spacer(1, 2 * mm),
        Paragraph(form, STYLES["sheet-form"]),
        Spacer(1, 10 * mm),
        key_box,
        Spacer(1, 8 * mm),
        dates,
        Spacer(1, 12 * mm),
        _notes_box("ご案内", notes),
    ]


def _key_sheet_page(c, document):
    c.saveState()
    c.setLineWidth(0.4)
    c.line(MARGIN, FOOTER_Y + 4 * mm, PAGE_WIDTH - MARGIN, FOOTER_Y + 4 * mm)
    c.setFont(MINCHO, 8)
    c.drawCentredString(PAGE_WIDTH / 2, FOOTER_Y, AUTHOR)
    c.restoreState()


def render_key_sheet_pdf(doc: PrintableDocument) -> bytes:
    """One A4 page: the key (text and QR), the form title, 作成年月日 and 診断年月日, and what to do with it.

    Nothing about the patient, the disease or the doctor. Raises ValueError when the document has no key yet.
    """
    if not doc.access_key:
        raise ValueError("アクセスキーが発行されていません（書類が確定されていません）。")
    _check(doc)
    pdf, pages = _build(lambda: _key_sheet_story(doc), _key_sheet_page, title=KEY_SHEET_HEADING,
                        subject=KEY_SHEET_HEADING)
    if pages != 1:  # the content is bounded; a second page would be a layout bug
        raise RuntimeError(f"アクセスキー票が{pages}ページになりました。")
    return pdf
