"""The notices mailed to a user, one A4 page per account; a batch is one PDF with many pages.

- ID・PW発行通知書 (`render_notices`): the login ID and an initial password a municipality issued.
- 暗号化鍵ファイル再発行通知書 (`render_key_notices`): after a key file was re-issued (the old one revoked), the one-time
  鍵登録コード with which the user registers a new key file before it expires.

Both share one page layout (`_draw_page`): header, addressee and sender, title, lead text, details table, steps,
notes, footer. The Japanese text uses reportlab's built-in CID fonts (HeiseiKakuGo-W5, HeiseiMin-W3): nothing is
downloaded or embedded, the viewer supplies the glyphs (Adobe Reader, macOS, Windows and poppler with Japanese fonts
all do). The ID, the password and the code are set in Courier, which every viewer has. The password and the code
appear on the page only, never in the document's metadata.
"""
import io
from dataclasses import dataclass, field
from datetime import date, datetime
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

from nanbyo.exports import JST

GOTHIC, MINCHO = "HeiseiKakuGo-W5", "HeiseiMin-W3"
MONO, MONO_BOLD = "Courier", "Courier-Bold"
TITLE = "難病・小慢データベース ログインID・初期パスワード発行通知書"
SUBJECT = "ログインID・初期パスワード発行通知書"
OPERATOR_NAME = "システム運営主体"  # the issuer of operator accounts (nanbyo.issuance)
KEY_TITLE = "難病・小慢データベース 暗号化鍵ファイル再発行通知書"
KEY_SUBJECT = "暗号化鍵ファイル再発行通知書"

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
    # What goes with the initial password at login: "" (first login, no key file yet), "key_file" (a password reset;
    # the registered key file stays) or "key_code" (the key was re-issued too: the code on its own notice).
    second_factor: str = ""
    reissued: bool = False  # a password reset by whoever sends the notice, not the first issue of the ID


@dataclass
class KeyNoticeEntry:
    login_id: str
    registration_code: str  # 鍵登録コード, e.g. ABCD-EFGH-JKLM: one-time, printed on the notice only
    expires_at: datetime    # timezone-aware; printed in Japan time
    name: str               # 氏名
    name_kana: str          # カナ
    role_label: str         # e.g. 指定医 / 医療機関 一般ユーザ / 自治体 一般ユーザ
    institution_code: str   # may be "" for municipality users
    institution_name: str   # may be ""
    department: str         # may be ""
    issuer_name: str        # who re-issued: 自治体 name, 「<医療機関名>（責任者）」 or "システム運営主体"
    issued_on: date
    login_url: str          # e.g. https://nanbyo.example.jp/login
    designations: list[str] = field(default_factory=list)  # shown under 区分 like the ID・PW notice; may be empty


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


def japan_time(moment: datetime) -> datetime:
    """`moment` in Japan time. Raises ValueError on a naive datetime (its zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime")
    return moment.astimezone(JST)


def clock(moment: datetime) -> str:
    """17時30分, 9時05分 (24-hour, Japan time)."""
    local = japan_time(moment)
    return f"{local.hour}時{local.minute:02d}分"


def wareki_datetime(moment: datetime) -> str:
    """令和8年12月2日 17時30分 for 2026-12-02T08:30Z: the 和暦 date and the time in Japan time."""
    return f"{wareki(japan_time(moment).date())} {clock(moment)}"


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
    "expiry": paragraph_style("expiry", font=GOTHIC, size=12.5, leading=18),
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
    page tall, so that one entry always stays on one page; when the blocks alone are taller than the space, the whole
    body is drawn smaller (rewrapped to the full width first), never over the footer.
    """

    def __init__(self, c: canvas.Canvas, top: float, bottom: float):
        self.c, self.top, self.bottom = c, top, bottom
        self.blocks = []  # (gap before, flowable, x, width)

    def add(self, flowable, gap=0.0, x=MARGIN, width=CONTENT_WIDTH):
        self.blocks.append((gap, flowable, x, width))

    def para(self, markup: str, style: str, gap=0.0, x=MARGIN, width=CONTENT_WIDTH):
        self.add(Paragraph(markup, STYLES[style]), gap, x, width)

    def _wrap(self, scale: float) -> list[float]:
        space = (self.top - self.bottom) / scale
        return [flowable.wrapOn(self.c, width / scale, space)[1] for _, flowable, _, width in self.blocks]

    def draw(self):
        space = self.top - self.bottom
        scale = 1.0
        heights = self._wrap(scale)
        if sum(heights) > space:
            # Rewrapped wider, a block is no taller: at this scale the blocks fit without gaps.
            scale = space / sum(heights)
            heights = self._wrap(scale)
        gaps = sum(gap for gap, *_ in self.blocks)
        room = space / scale - sum(heights)
        factor = 1.0 if room >= gaps else max(room, 0) / gaps
        if scale != 1.0:
            self.c.saveState()
            self.c.translate(MARGIN, self.top)
            self.c.scale(scale, scale)
            self.c.translate(-MARGIN, -self.top)
        y = self.top
        for (gap, flowable, x, _), height in zip(self.blocks, heights):
            y -= gap * factor + height
            flowable.drawOn(self.c, x if scale == 1.0 else MARGIN + (x - MARGIN) / scale, y)
        if scale != 1.0:
            self.c.restoreState()


def _person_rows(e) -> list:
    """The 氏名（カナ）, 区分 and 医療機関 rows of either notice's details table."""
    kind = markup_text(e.role_label)
    if e.designations:
        kind += "<br/>" + "<br/>".join(markup_text(d) for d in e.designations)
    institution = "　".join(markup_text(v) for v in (e.institution_code, e.institution_name) if v) or "―"
    return [
        ("氏名（カナ）", Paragraph(f"{markup_text(e.name)}（{markup_text(e.name_kana)}）", STYLES["value"])),
        ("区分", Paragraph(kind, STYLES["value"])),
        ("医療機関", Paragraph(institution, STYLES["value"])),
    ]


def _details(rows: list, shaded: int) -> Table:
    """The table under 記: (label, flowable or list of flowables) rows; the values of the first `shaded` rows (the
    ID and the secret the notice is for) on a tinted background."""
    table = Table([[Paragraph(label, STYLES["label"]), value] for label, value in rows],
                  colWidths=[LABEL_WIDTH, CONTENT_WIDTH - LABEL_WIDTH])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.7, colors.black),
        ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#E8E8E8")),
        ("BACKGROUND", (1, 0), (1, shaded - 1), colors.HexColor("#FAFAF2")),
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


@dataclass
class _Letter:
    """What one page of a notice says; `_draw_page` lays out every kind of notice the same way.
    Plain-text fields are escaped when drawn; the *markup* fields are Paragraph markup already."""
    issued_on: date
    issuer_name: str         # the sender (top right) and the footer
    institution_name: str    # the addressee: institution, department, name 様
    department: str
    name: str
    subject: str             # the footer
    title: str
    lead: str                # markup: the paragraph under the title
    rows: list               # the details table under 記: (label, flowable or list of flowables)
    shaded: int              # how many of the first rows hold the ID and the secret
    steps_heading: str
    steps: list[str]         # markup, numbered 1. 2. ...
    notes: list[str]         # markup, in the ご注意 box


def _fit(text: str, font: str, size: float, width: float, smallest: float = 6.5) -> tuple[str, float]:
    """`text` at `size`, or smaller down to `smallest`, or cut short with …, so that it is at most `width` wide."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text, size
    size = max(smallest, size * width / pdfmetrics.stringWidth(text, font, size))
    while len(text) > 1 and pdfmetrics.stringWidth(text, font, size) > width:
        text = text[:-2] + "…"
    return text, size


def _login_url(url: str) -> str:
    return f'<font name="{MONO}">{markup_text(url)}</font>' if url else "ログイン画面"


def _draw_page(c: canvas.Canvas, letter: _Letter, page: int, pages: int):
    top = PAGE_HEIGHT - MARGIN

    # Header: 親展 and the issue date.
    c.setFont(GOTHIC, 11)
    c.setLineWidth(0.9)
    c.rect(MARGIN, top - 6.5 * mm, 15 * mm, 7 * mm)
    c.drawCentredString(MARGIN + 7.5 * mm, top - 4.6 * mm, "親展")
    c.setFont(MINCHO, 10.5)
    c.drawRightString(PAGE_WIDTH - MARGIN, top - 4.6 * mm, both_dates(letter.issued_on))

    # Footer.
    c.setLineWidth(0.4)
    c.line(MARGIN, FOOTER_Y + 4.5 * mm, PAGE_WIDTH - MARGIN, FOOTER_Y + 4.5 * mm)
    c.setFont(MINCHO, 9)
    subject_left = PAGE_WIDTH / 2 - pdfmetrics.stringWidth(letter.subject, MINCHO, 9) / 2
    issuer, size = _fit(printable(letter.issuer_name).replace("\n", " "), MINCHO, 9, subject_left - 4 * mm - MARGIN)
    if size == 9:
        c.drawString(MARGIN, FOOTER_Y, issuer)
    else:  # a long name, shrunk to end before the subject
        c.setFont(MINCHO, size)
        c.drawString(MARGIN, FOOTER_Y, issuer)
        c.setFont(MINCHO, 9)
    c.drawCentredString(PAGE_WIDTH / 2, FOOTER_Y, letter.subject)
    c.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, f"{page} / {pages}")

    body = _Page(c, top - 10 * mm, FOOTER_Y + 9 * mm)
    # The addressee on the left, the sender on the right.
    address_width = CONTENT_WIDTH * 0.62
    for line in (letter.institution_name, letter.department):
        if line:
            body.para(markup_text(line), "address", width=address_width)
    body.para(f"{markup_text(letter.name)}　様", "addressee", gap=1 * mm, width=address_width)
    body.add(HRFlowable(width="85%", thickness=0.6, color=colors.black, hAlign="LEFT"),
             width=address_width)
    body.para(markup_text(letter.issuer_name), "sender", gap=2 * mm)

    body.para(letter.title, "title", gap=9 * mm)
    body.para(letter.lead, "text", gap=6 * mm)
    body.para("記", "ki", gap=3 * mm)
    body.add(_details(letter.rows, letter.shaded), gap=2 * mm)

    body.para(letter.steps_heading, "heading", gap=7 * mm)
    for number, step in enumerate(letter.steps, start=1):
        body.para(f"{number}.　{step}", "step", gap=0.5 * mm, x=MARGIN + 3 * mm, width=CONTENT_WIDTH - 3 * mm)

    body.add(_notes_box(letter.notes), gap=6 * mm)
    body.para("以上", "end", gap=3 * mm)
    body.draw()


def _render(letters: list[_Letter], title: str, subject: str) -> bytes:
    """One A4 page per letter, in one PDF. The metadata names the notice and its senders, never a secret."""
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)  # reportlab's defaults: page compression on, not invariant
    c.setTitle(title)
    c.setSubject(subject)
    c.setAuthor("、".join(dict.fromkeys(letter.issuer_name for letter in letters if letter.issuer_name)))
    c.setCreator("nanbyo")
    for number, letter in enumerate(letters, start=1):
        _draw_page(c, letter, number, len(letters))
        c.showPage()
    c.save()
    return out.getvalue()


# --- ID・PW発行通知書 -------------------------------------------------------------------------------------------

def _id_steps(e: NoticeEntry) -> list[str]:
    url = _login_url(e.login_url)
    change = "初期パスワードを新しいパスワードに変更します（12文字以上で、推測されにくいもの）。"
    if e.second_factor == "key_file":
        return [f"{url} を開き、上記のログインIDと初期パスワードを入力し、お手持ちの暗号化鍵ファイル（これまでのもの）を"
                "選択してログインします。", change, "以後は、ログインID・新しいパスワード・暗号化鍵ファイルでログインします。"]
    if e.second_factor == "key_code":
        return [f"{url} を開き、上記のログインIDと初期パスワードを入力し、「鍵ファイルの再発行を受けた方」に"
                "暗号化鍵ファイル再発行通知書の鍵登録コードを入力してログインします。", change,
                "新しい暗号化鍵ファイルをダウンロードし、安全な場所に保管します。",
                "ログインID・新しいパスワード・新しい暗号化鍵ファイルで、改めてログインします。"]
    return [f"{url} を開き、上記のログインIDと初期パスワードを入力してログインします（鍵ファイルは不要です）。", change,
            "メールアドレスを登録します。", "暗号化鍵ファイルをダウンロードし、安全な場所に保管します。",
            "ログインID・新しいパスワード・暗号化鍵ファイルで、改めてログインします。"]


def _id_letter(e: NoticeEntry) -> _Letter:
    issuer = markup_text(e.issuer_name)
    password_note = ('<font size="8.5">英字の大文字・小文字を区別します。'
                     '紛らわしい文字（0 と O、1 と l など）は使っていません。</font>')
    rows = [
        ("ログインID", Paragraph(_mono(e.login_id), STYLES["mono"])),
        ("初期パスワード", [Paragraph(_mono(e.initial_password), STYLES["mono"]),
                       Paragraph(password_note, STYLES["small"])]),
    ] + _person_rows(e)
    issuing = f"発行元（{issuer}）" if e.issuer_name == OPERATOR_NAME else f"発行元の自治体（{issuer}）"
    # The sender may be the institution's 責任者, so the 自治体 is not named where the user has an institution.
    ask = "所属医療機関の責任者または発行元の自治体" if e.institution_name else issuing
    return _Letter(
        issued_on=e.issued_on, issuer_name=e.issuer_name, institution_name=e.institution_name,
        department=e.department, name=e.name, subject=SUBJECT, title=TITLE,
        lead=f"{issuer}は、あなたの難病・小慢データベースのログインIDを発行しましたので、下記のとおり通知します。"
             "初回ログインの際は、下記の手順により初期パスワードを必ず変更してください。"
             if not (e.second_factor or e.reissued) else
             f"{issuer}は、あなたの難病・小慢データベースのパスワードを再設定しましたので、下記のとおり通知します。"
             "次回ログインの際は、下記の手順により初期パスワードを必ず変更してください。",
        rows=rows, shaded=2, steps_heading="初回ログインの手順" if not e.second_factor else "次回ログインの手順",
        steps=_id_steps(e),
        notes=[
            "・2回目以降のログインには、パスワードに加えて暗号化鍵ファイルが必要です。",
            "・初期パスワードは、初回ログインの際に必ず変更してください。",
            "・この通知書にはパスワードが記載されています。他人の目に触れないよう厳重に保管し、"
            "パスワードを変更した後は、シュレッダー等により確実に廃棄してください。",
            f"・紛失したとき、またはパスワードを忘れたときは、{ask}に再発行を依頼してください。"
            "再発行すると初期パスワードが新たに設定され、この通知書のパスワードは使えなくなります。",
        ])


def render_notices(entries: list[NoticeEntry]) -> bytes:
    """One A4 page per entry (a batch = one PDF with many pages). Raises ValueError on an empty list."""
    entries = list(entries)
    if not entries:
        raise ValueError("発行通知書の対象がありません。")
    register_fonts()  # before the letters' Paragraphs are made
    return _render([_id_letter(e) for e in entries], TITLE, SUBJECT)


# --- 暗号化鍵ファイル再発行通知書 ---------------------------------------------------------------------------------

def _key_letter(e: KeyNoticeEntry) -> _Letter:
    issuer = markup_text(e.issuer_name)
    expires = japan_time(e.expires_at)  # ValueError on a naive datetime
    expiry = f"{wareki_datetime(expires)}まで"
    code_note = '<font size="8.5">英字の大文字・小文字は区別しません。ハイフン（-）は省略できます。</font>'
    rows = [
        ("ログインID", Paragraph(_mono(e.login_id), STYLES["mono"])),
        ("鍵登録コード", [Paragraph(_mono(e.registration_code), STYLES["mono"]), Paragraph(code_note, STYLES["small"])]),
        ("有効期限", Paragraph(f'{expiry}<font name="{MINCHO}" size="9.5">（{seireki(expires.date())}）</font>',
                            STYLES["expiry"])),
    ] + _person_rows(e)
    if e.institution_name:
        ask = "所属医療機関の責任者または発行元の自治体"
    elif e.issuer_name == OPERATOR_NAME:
        ask = f"発行元（{issuer}）"
    else:
        ask = "発行元の自治体"
    return _Letter(
        issued_on=e.issued_on, issuer_name=e.issuer_name, institution_name=e.institution_name,
        department=e.department, name=e.name, subject=KEY_SUBJECT, title=KEY_TITLE,
        lead=f"{issuer}は、あなたの難病・小慢データベースの暗号化鍵ファイルを再発行しましたので、下記のとおり通知します。"
             "有効期限までに、下記の手順により新しい暗号化鍵ファイルを登録してください。",
        rows=rows, shaded=2, steps_heading="鍵ファイルの登録手順",
        steps=[
            f"{_login_url(e.login_url)} を開き、ログインIDと現在のパスワード（ID・PW発行通知書を同時に受け取った場合は、"
            "その初期パスワード）を入力します。",
            "「鍵ファイルの再発行を受けた方」を開き、鍵登録コードを入力してログインします（鍵ファイルは不要です）。",
            "新しい暗号化鍵ファイルをダウンロードし、安全な場所に保管します。",
            "ログインID・パスワード・新しい暗号化鍵ファイルで、改めてログインします。",
        ],
        notes=[
            "・これまでの暗号化鍵ファイルは使えなくなりました。",
            f"・鍵登録コードは1回限り（新しい暗号化鍵ファイルを登録するまで）、有効期限（{expiry}）まで使えます。",
            "・この通知書には鍵登録コードが記載されています。他人の目に触れないよう厳重に保管し、"
            "新しい暗号化鍵ファイルを登録した後は、シュレッダー等により確実に廃棄してください。",
            f"・有効期限が過ぎたとき、またはこの通知書を紛失したときは、{ask}に再発行を依頼してください。"
            "再発行すると、この通知書の鍵登録コードは使えなくなります。",
        ])


def render_key_notices(entries: list[KeyNoticeEntry]) -> bytes:
    """暗号化鍵ファイル再発行通知書: one A4 page per entry (a batch = one PDF with many pages). Raises ValueError on an
    empty list or on an entry whose expires_at is a naive datetime (checked before anything is drawn)."""
    entries = list(entries)
    if not entries:
        raise ValueError("再発行通知書の対象がありません。")
    register_fonts()  # before the letters' Paragraphs are made
    return _render([_key_letter(e) for e in entries], KEY_TITLE, KEY_SUBJECT)
