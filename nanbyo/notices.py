"""ID・PW発行通知書: the notice of a login ID and initial password a municipality mails to each user.

One A4 page per account; a batch is one PDF with many pages. The Japanese text uses reportlab's built-in CID fonts
(HeiseiKakuGo-W5, HeiseiMin-W3): nothing is downloaded or embedded, the viewer supplies the glyphs (Adobe Reader,
macOS, Windows and poppler with Japanese fonts all do). The ID and the password are set in Courier, which every
viewer has. The password appears on the page only, never in the document's metadata.
"""
import io
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, Table, TableStyle
from reportlab.platypus.flowables import HRFlowable

GOTHIC, MINCHO = "HeiseiKakuGo-W5", "HeiseiMin-W3"
MONO, MONO_BOLD = "Courier", "Courier-Bold"
TITLE = "難病・小慢データベース ログインID・初期パスワード発行通知書"
SUBJECT = "ログインID・初期パスワード発行通知書"
OPERATOR_NAME = "システム運営主体"  # the issuer of operator accounts (nanbyo.issuance)

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 20 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
FOOTER_Y = 12 * mm
LABEL_WIDTH = 36 * mm


@dataclass
class NoticeEntry:
    login_id: str
    initial_password: str
    name: str               # 氏名
    name_kana: str          # カナ
    role_label: str         # e.g. 指定医 / 医療機関 一般ユーザ / 自治体 一般ユーザ
    designations: list[str]  # e.g. ["難病指定医 13-N-0001"], may be empty
    institution_code: str   # may be "" for municipality users
    institution_name: str   # may be ""
    department: str         # may be ""
    issuer_name: str        # issuing 自治体 name, e.g. 東京都 (or "システム運営主体")
    issued_on: date
    login_url: str          # e.g. https://nanbyo.example.jp/login


# --- dates -------------------------------------------------------------------------------------------------------

# (first day, name), newest first.
ERAS = [(date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"), (date(1926, 12, 25), "昭和")]


def wareki(d: date) -> str:
    """The Japanese era date: 令和8年11月25日 for 2026-11-25, 令和元年5月1日 for 2019-05-01."""
    for start, era in ERAS:
        if d >= start:
            year = d.year - start.year + 1
            return f"{era}{'元' if year == 1 else year}年{d.month}月{d.day}日"
    return seireki(d)


def seireki(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def both_dates(d: date) -> str:
    """令和8年11月25日（2026年11月25日）."""
    return f"{wareki(d)}（{seireki(d)}）"


# --- page --------------------------------------------------------------------------------------------------------

def register_fonts():
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (GOTHIC, MINCHO):
        if name not in registered:
            pdfmetrics.registerFont(UnicodeCIDFont(name))


def paragraph_style(name, font=MINCHO, size=10.5, leading=None, **kw) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading or size * 1.5, wordWrap="CJK", **kw)


STYLES = {
    "text": paragraph_style("text"),
    "small": paragraph_style("small", size=9.5),
    "address": paragraph_style("address", size=11.5),
    "addressee": paragraph_style("addressee", size=14, leading=20),
    "sender": paragraph_style("sender", size=11.5, alignment=TA_RIGHT),
    "title": paragraph_style("title", font=GOTHIC, size=15, leading=22, alignment=TA_CENTER),
    "ki": paragraph_style("ki", alignment=TA_CENTER),
    "heading": paragraph_style("heading", font=GOTHIC, size=12, leading=17),
    "label": paragraph_style("label", font=GOTHIC, size=10.5),
    "value": paragraph_style("value", size=11),
    "mono": paragraph_style("mono", font=MONO_BOLD, size=17, leading=21),
    "step": paragraph_style("step", leftIndent=6 * mm, firstLineIndent=-6 * mm),
    "note": paragraph_style("note", size=9.5, leftIndent=4 * mm, firstLineIndent=-4 * mm),
    "end": paragraph_style("end", alignment=TA_RIGHT),
}


GETA = "〓"  # the customary mark for a character the font cannot print


def printable(value: str) -> str:
    """Text the CID fonts can print: newlines normalised, control characters dropped, and characters outside the
    fonts' range (surrogate-pair kanji such as 𠮷, private-use 外字, emoji) shown as 〓 instead of vanishing."""
    out = []
    for ch in (value or "").replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "):
        code = ord(ch)
        if ch == "\n":
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            continue
        elif code > 0xFFFF or 0xE000 <= code <= 0xF8FF or 0xD800 <= code <= 0xDFFF:
            out.append(GETA)
        else:
            out.append(ch)
    return "".join(out)


def markup_text(value: str) -> str:
    """User data as Paragraph markup: escaped, so that a name with & or < is printed as written."""
    return escape(printable(value))


def _mono(value: str) -> str:
    """Courier when the value is plain ASCII (login IDs and passwords are); else the gothic face."""
    if value.isascii():
        return markup_text(value)
    return f'<font name="{GOTHIC}" size="14">{markup_text(value)}</font>'


class _Page:
    """Flowables stacked top-down between the header and the footer of one page.

    The gaps between the blocks shrink when an entry's text (many designations, a long institution name) makes the
    page tall, so that one entry always stays on one page.
    """

    def __init__(self, c: canvas.Canvas, top: float, bottom: float):
        self.c, self.top, self.bottom = c, top, bottom
        self.blocks = []  # (gap before, flowable, x, width)

    def add(self, flowable, gap=0.0, x=MARGIN, width=CONTENT_WIDTH):
        self.blocks.append((gap, flowable, x, width))

    def para(self, markup: str, style: str, gap=0.0, x=MARGIN, width=CONTENT_WIDTH):
        self.add(Paragraph(markup, STYLES[style]), gap, x, width)

    def draw(self):
        heights = [flowable.wrapOn(self.c, width, self.top - self.bottom)[1] for _, flowable, _, width in self.blocks]
        gaps = sum(gap for gap, *_ in self.blocks)
        room = self.top - self.bottom - sum(heights)
        factor = 1.0 if room >= gaps else max(room, 0) / gaps
        y = self.top
        for (gap, flowable, x, _), height in zip(self.blocks, heights):
            y -= gap * factor + height
            flowable.drawOn(self.c, x, y)


def _details(e: NoticeEntry) -> Table:
    kind = markup_text(e.role_label)
    if e.designations:
        kind += "<br/>" + "<br/>".join(markup_text(d) for d in e.designations)
    institution = "　".join(markup_text(v) for v in (e.institution_code, e.institution_name) if v) or "―"
    password_note = ('<font size="8.5">英字の大文字・小文字を区別します。'
                     '紛らわしい文字（0 と O、1 と l など）は使っていません。</font>')
    rows = [
        ("ログインID", Paragraph(_mono(e.login_id), STYLES["mono"])),
        ("初期パスワード", [Paragraph(_mono(e.initial_password), STYLES["mono"]),
                       Paragraph(password_note, STYLES["small"])]),
        ("氏名（カナ）", Paragraph(f"{markup_text(e.name)}（{markup_text(e.name_kana)}）", STYLES["value"])),
        ("区分", Paragraph(kind, STYLES["value"])),
        ("医療機関", Paragraph(institution, STYLES["value"])),
    ]
    table = Table([[Paragraph(label, STYLES["label"]), value] for label, value in rows],
                  colWidths=[LABEL_WIDTH, CONTENT_WIDTH - LABEL_WIDTH])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.7, colors.black),
        ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#E8E8E8")),
        ("BACKGROUND", (1, 0), (1, 1), colors.HexColor("#FAFAF2")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 1.8 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.8 * mm),
    ]))
    return table


def _notes_box(notes: list[str]) -> Table:
    box = Table([[Paragraph("ご注意", STYLES["heading"])]] + [[Paragraph(n, STYLES["note"])] for n in notes],
                colWidths=[CONTENT_WIDTH])
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.9, colors.black),
        ("LEFTPADDING", (0, 0), (-1, -1), 4 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 0.6 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 0.6 * mm),
        ("TOPPADDING", (0, 0), (-1, 0), 2.5 * mm),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 2.5 * mm),
    ]))
    return box


def _draw_page(c: canvas.Canvas, e: NoticeEntry, page: int, pages: int):
    issuer = markup_text(e.issuer_name)
    top = PAGE_HEIGHT - MARGIN

    # Header: 親展 and the issue date.
    c.setFont(GOTHIC, 11)
    c.setLineWidth(0.9)
    c.rect(MARGIN, top - 6.5 * mm, 15 * mm, 7 * mm)
    c.drawCentredString(MARGIN + 7.5 * mm, top - 4.6 * mm, "親展")
    c.setFont(MINCHO, 10.5)
    c.drawRightString(PAGE_WIDTH - MARGIN, top - 4.6 * mm, both_dates(e.issued_on))

    # Footer.
    c.setLineWidth(0.4)
    c.line(MARGIN, FOOTER_Y + 4.5 * mm, PAGE_WIDTH - MARGIN, FOOTER_Y + 4.5 * mm)
    c.setFont(MINCHO, 9)
    c.drawString(MARGIN, FOOTER_Y, e.issuer_name)
    c.drawCentredString(PAGE_WIDTH / 2, FOOTER_Y, SUBJECT)
    c.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, f"{page} / {pages}")

    body = _Page(c, top - 10 * mm, FOOTER_Y + 9 * mm)
    # The addressee on the left, the sender on the right.
    address_width = CONTENT_WIDTH * 0.62
    for line in (e.institution_name, e.department):
        if line:
            body.para(markup_text(line), "address", width=address_width)
    body.para(f"{markup_text(e.name)}　様", "addressee", gap=1 * mm, width=address_width)
    body.add(HRFlowable(width=address_width * 0.85, thickness=0.6, color=colors.black, hAlign="LEFT"),
             width=address_width)
    body.para(issuer, "sender", gap=2 * mm)

    body.para(TITLE, "title", gap=9 * mm)
    body.para(f"{issuer}は、あなたの難病・小慢データベースのログインIDを発行しましたので、下記のとおり通知します。"
              "初回ログインの際は、下記の手順により初期パスワードを必ず変更してください。", "text", gap=6 * mm)
    body.para("記", "ki", gap=3 * mm)
    body.add(_details(e), gap=2 * mm)

    body.para("初回ログインの手順", "heading", gap=7 * mm)
    url = f'<font name="{MONO}">{markup_text(e.login_url)}</font>' if e.login_url else "ログイン画面"
    steps = [
        f"{url} を開き、上記のログインIDと初期パスワードを入力してログインします（鍵ファイルは不要です）。",
        "初期パスワードを新しいパスワードに変更します（12文字以上で、推測されにくいもの）。",
        "メールアドレスを登録します。",
        "暗号化鍵ファイルをダウンロードし、安全な場所に保管します。",
        "ログインID・新しいパスワード・暗号化鍵ファイルで、改めてログインします。",
    ]
    for number, step in enumerate(steps, start=1):
        body.para(f"{number}.　{step}", "step", gap=0.5 * mm, x=MARGIN + 3 * mm, width=CONTENT_WIDTH - 3 * mm)

    issuing = f"発行元（{issuer}）" if e.issuer_name == OPERATOR_NAME else f"発行元の自治体（{issuer}）"
    ask = f"所属医療機関の責任者または{issuing}" if e.institution_name else issuing
    body.add(_notes_box([
        "・2回目以降のログインには、パスワードに加えて暗号化鍵ファイルが必要です。",
        "・初期パスワードは、初回ログインの際に必ず変更してください。",
        "・この通知書にはパスワードが記載されています。他人の目に触れないよう厳重に保管し、"
        "パスワードを変更した後は、シュレッダー等により確実に廃棄してください。",
        f"・紛失したとき、またはパスワードを忘れたときは、{ask}に再発行を依頼してください。"
        "再発行すると初期パスワードが新たに設定され、この通知書のパスワードは使えなくなります。",
    ]), gap=6 * mm)
    body.para("以上", "end", gap=3 * mm)
    body.draw()


def render_notices(entries: list[NoticeEntry]) -> bytes:
    """One A4 page per entry (a batch = one PDF with many pages). Raises ValueError on an empty list."""
    entries = list(entries)
    if not entries:
        raise ValueError("発行通知書の対象がありません。")
    register_fonts()
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)  # reportlab's defaults: page compression on, not invariant
    c.setTitle(TITLE)
    c.setSubject(SUBJECT)
    c.setAuthor("、".join(dict.fromkeys(e.issuer_name for e in entries if e.issuer_name)))
    c.setCreator("nanbyo")
    for number, entry in enumerate(entries, start=1):
        _draw_page(c, entry, number, len(entries))
        c.showPage()
    c.save()
    return out.getvalue()
