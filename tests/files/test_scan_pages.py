"""Page images of scans (nanbyo.files.scan_pages): every kind of scan becomes PNG pages no wider than asked, and
hostile or broken files end in ScanPageError with a message for the user, never in a library's own exception."""
import io
import struct
import threading
import warnings
import zlib

import pytest
from PIL import Image, ImageFile, TiffImagePlugin
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from nanbyo.files import scan_pages
from nanbyo.files.scan_pages import ScanPageError, page_count, render_page

UNREADABLE = "スキャンファイルを画像として表示できません。ダウンロードして確かめてください。"
NO_PAGE = "そのページはありません。"
A4_WIDTH, A4_HEIGHT = A4  # points
BLACK_BOX = (100, 400, 300, 300)  # x, y (from the bottom), width, height in points, drawn on page 2 only


def pdf_bytes(pages=2, pagesize=A4, draw=None):
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=pagesize)
    for number in range(1, pages + 1):
        pdf.drawString(72, 72, f"page {number}")
        if draw:
            draw(pdf, number)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def two_page_pdf():
    def draw(pdf, number):
        if number == 2:
            pdf.rect(*BLACK_BOX, stroke=0, fill=1)
    return pdf_bytes(2, draw=draw)


def image_bytes(image, kind, **options):
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def three_frame_tiff():
    frames = [Image.new("RGB", (300, 400), "red"), Image.new("L", (2000, 1000), 128), Image.new("1", (640, 480), 1)]
    return image_bytes(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")


def decoded(png):
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return image


def rendered(data, kind, page=1, max_width=1400):
    image = decoded(render_page(data, kind, page, max_width))
    assert image.width <= max_width
    assert image.mode in ("L", "RGB")
    return image


def crafted_png(width, height):
    """A PNG header claiming width x height 1-bit pixels, with a few bytes of pixel data: cheap to make, and any
    attempt to decode it would end in a truncated-data error rather than in 'too large'."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def crafted_tiff(sizes):
    """A little-endian TIFF of uncompressed 1-bit pages of the given (width, height), whose strips all point at the
    same 8 bytes of data: enough for an 8x8 page, so the header of a larger one claims pixels the file lacks."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 16) + b"\x00\xff" * 4)
    for index, (width, height) in enumerate(sizes):
        entries = [(256, 4, width), (257, 4, height), (258, 3, 1), (259, 3, 1), (262, 3, 1), (273, 4, 8),
                   (278, 4, height), (279, 4, (width + 7) // 8 * height)]
        following = len(out) + 2 + 12 * len(entries) + 4 if index < len(sizes) - 1 else 0
        out += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            out += struct.pack("<HHII", tag, kind, 1, value)
        out += struct.pack("<I", following)
    return bytes(out)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails (and records) any decoding of pixels: a refused file must be refused from its header alone."""
    calls = []

    def load(self, *args, **kwargs):
        calls.append(self.size)
        raise AssertionError("pixels decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", load)
    return calls


def test_pdf_pages_show_what_was_drawn():
    data = two_page_pdf()
    assert page_count(data, "pdf") == 2
    first, second = rendered(data, "pdf", 1), rendered(data, "pdf", 2)
    assert first.size == second.size and first.width == 1400
    assert abs(first.height / first.width - A4_HEIGHT / A4_WIDTH) < 0.01
    scale = first.width / A4_WIDTH
    x, y, width, height = BLACK_BOX
    inside = (round((x + width / 2) * scale), round((A4_HEIGHT - y - height / 2) * scale))
    assert first.convert("L").getpixel(inside) > 240  # page 1: white paper there
    assert second.convert("L").getpixel(inside) < 20  # page 2: the black box
    assert second.convert("L").getpixel((5, 5)) > 240


def test_pdf_page_is_never_more_than_200_dpi():
    small = pdf_bytes(1, pagesize=(144, 72))  # 2 x 1 inches
    image = rendered(small, "pdf", 1, max_width=1400)
    assert image.size == (400, 200)
    assert rendered(small, "pdf", 1, max_width=100).size == (100, 50)


def test_pdf_page_turned_by_its_rotate_entry_is_shown_turned():
    def draw(pdf, number):
        pdf.setPageRotation(90)
    data = pdf_bytes(1, draw=draw)
    assert b"/MediaBox [ 0 0 841.8898 595.2756 ]" in data and b"/Rotate 90" in data  # landscape, turned upright
    image = rendered(data, "pdf", 1, max_width=600)
    assert image.width == 600 and abs(image.height / image.width - A4_HEIGHT / A4_WIDTH) < 0.01


def test_multi_page_tiff():
    data = three_frame_tiff()
    assert page_count(data, "tiff") == 3
    first = rendered(data, "tiff", 1, max_width=800)
    assert first.size == (300, 400) and first.convert("RGB").getpixel((10, 10)) == (255, 0, 0)
    second = rendered(data, "tiff", 2, max_width=800)
    assert second.size == (800, 400) and abs(second.getpixel((10, 10)) - 128) <= 1
    third = rendered(data, "tiff", 3, max_width=800)
    assert third.size == (640, 480) and third.getpixel((10, 10)) == 255
    assert rendered(data, "tiff", 1, max_width=800).size == (300, 400)  # back to an earlier page


def test_cmyk_jpeg():
    data = image_bytes(Image.new("CMYK", (1600, 1000), (0, 255, 255, 0)), "JPEG", quality=95)
    assert page_count(data, "jpeg") == 1
    image = rendered(data, "jpeg", 1, max_width=500)
    assert image.size == (500, 312) and image.mode == "RGB"
    red, green, blue = image.getpixel((250, 150))
    assert red > 200 and green < 60 and blue < 60


def test_jpeg_turned_by_its_exif_orientation_is_shown_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored lying on its side: a browser turns it 90 degrees clockwise
    stored = Image.new("RGB", (600, 300), "white")
    stored.paste((0, 0, 0), (0, 0, 100, 300))  # the stored left edge, which ends up on top
    image = rendered(image_bytes(stored, "JPEG", exif=exif), "jpeg", 1, max_width=200)
    assert image.size == (200, 400)
    assert image.convert("L").getpixel((100, 20)) < 40 and image.convert("L").getpixel((100, 380)) > 215


def test_palette_png():
    image = Image.new("P", (3000, 1500), 0)
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 1500, 1500))
    data = image_bytes(image, "PNG")
    assert page_count(data, "png") == 1
    shown = rendered(data, "png")
    assert shown.size == (1400, 700)
    assert shown.convert("RGB").getpixel((300, 300)) == (0, 0, 255)
    assert shown.convert("RGB").getpixel((1100, 300)) == (255, 255, 255)


def test_transparent_png_is_shown_on_white():
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, 20, 40))
    shown = rendered(image_bytes(image, "PNG"), "png").convert("RGB")
    assert shown.getpixel((5, 5)) == (0, 0, 0) and shown.getpixel((35, 5)) == (255, 255, 255)


def test_one_bit_fax_tiff_keeps_its_thin_lines():
    page = Image.new("1", (2480, 3508), 1)  # A4 at 300 dpi
    for y in range(500, 3000, 40):
        page.paste(0, (200, y, 2280, y + 2))  # lines 2 pixels thick, thinner than the downscaling step
    data = image_bytes(page, "TIFF", compression="group4")
    assert page_count(data, "tiff") == 1
    shown = rendered(data, "tiff", 1, max_width=1240)
    assert shown.size == (1240, 1754) and shown.mode == "L"
    column = [shown.getpixel((620, y)) for y in range(240, 270)]
    assert min(column) < 128 and max(column) == 255


@pytest.mark.parametrize("mode, value, shown", [("I;16", 65535, 255), ("I;16", 32768, 127), ("I;16B", 0, 0),
                                                ("I;16", 4095, 255), ("I;16", 2048, 127)])
def test_16_bit_tiff(mode, value, shown):
    data = image_bytes(Image.new(mode, (1600, 100), value), "TIFF")
    image = rendered(data, "tiff", 1, max_width=800)
    assert image.size == (800, 50) and image.mode == "L"
    assert abs(image.getpixel((400, 25)) - shown) <= 1


def test_page_out_of_range():
    cases = [(two_page_pdf(), "pdf", (0, 3, 99)), (three_frame_tiff(), "tiff", (0, 4)),
             (image_bytes(Image.new("RGB", (10, 10)), "JPEG"), "jpeg", (0, 2)),
             (image_bytes(Image.new("L", (10, 10)), "PNG"), "png", (-1, 2))]
    for data, kind, pages in cases:
        for page in pages:
            with pytest.raises(ScanPageError) as caught:
                render_page(data, kind, page)
            assert str(caught.value) == NO_PAGE


@pytest.mark.parametrize("kind, data", ids=["pdf-no-pages", "pdf-magic-only", "tiff-le", "tiff-be", "jpeg", "png"],
                         argvalues=[
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n" + b"scanned page " * 200 + b"\n%%EOF\n"),
    ("pdf", b"%PDF-"),
    ("tiff", b"II*\x00" + b"\x00" * 64),
    pytest.param("tiff", b"MM\x00*" + b"\xff" * 64, marks=pytest.mark.filterwarnings("ignore:Corrupt EXIF")),
    ("jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 64),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
])
def test_corrupt_scan(kind, data):
    for call in (lambda: page_count(data, kind), lambda: render_page(data, kind, 1)):
        with pytest.raises(ScanPageError) as caught:
            call()
        assert str(caught.value) == UNREADABLE


@pytest.mark.parametrize("kind, image", [("png", Image.new("RGB", (800, 600), "blue")),
                                         ("jpeg", Image.new("RGB", (800, 600), "blue")),
                                         ("tiff", Image.new("RGB", (800, 600), "blue"))])
def test_truncated_scan_with_a_good_header(kind, image):
    data = image_bytes(image, kind.upper())
    cut = data[:len(data) // 2] if kind != "tiff" else data[:len(data) - 1000]
    with pytest.raises(ScanPageError) as caught:
        render_page(cut, kind, 1)
    assert str(caught.value) == UNREADABLE


def test_truncated_pdf():
    data = two_page_pdf()
    for cut in (data[:len(data) // 3], data[:200]):
        for call in (lambda: page_count(cut, "pdf"), lambda: render_page(cut, "pdf", 1)):
            with pytest.raises(ScanPageError) as caught:
                call()
            assert str(caught.value) == UNREADABLE


@pytest.mark.parametrize("width, height", [
    (20000, 20000),  # past twice Pillow's own limit: Pillow raises DecompressionBombError
    (10000, 10000),  # past Pillow's limit: it only warns (DecompressionBombWarning)
    (8000, 8000),  # 64 MP: past ours alone
])
def test_huge_png_header_is_refused_before_decoding(no_decoding, width, height):
    data = crafted_png(width, height)
    assert len(data) < 200
    with pytest.raises(ScanPageError) as caught:
        render_page(data, "png", 1)
    assert "大きすぎて" in str(caught.value)
    assert no_decoding == []


def test_huge_tiff_page_is_refused_alone(no_decoding):
    data = crafted_tiff([(8, 8), (9000, 9000)])  # page 2 claims 81 MP, below Pillow's limit but not ours
    assert page_count(data, "tiff") == 2
    with pytest.raises(ScanPageError) as caught:
        render_page(data, "tiff", 2)
    assert "大きすぎて" in str(caught.value)
    assert no_decoding == []


def test_crafted_tiff_is_a_real_tiff():
    """The small page of crafted_tiff decodes: the test above is refused for its size, not for bad data."""
    image = rendered(crafted_tiff([(8, 8), (9000, 9000)]), "tiff", 1)
    assert image.size == (8, 8)


def test_pdf_page_with_a_huge_embedded_image_is_refused():
    def draw(pdf, number):
        if number == 2:
            pdf.drawImage(ImageReader(Image.new("L", (1000, 1000), 128)), 0, 0, 100, 100)
    data = pdf_bytes(2, draw=draw)
    assert rendered(data, "pdf", 2).width == 1400
    # Same length, so the cross-reference offsets still hold: 81 MP claimed.
    huge = data.replace(b"/Height 1000", b"/Height 9000").replace(b"/Width 1000", b"/Width 9000")
    assert page_count(huge, "pdf") == 2
    assert rendered(huge, "pdf", 1).width == 1400
    with pytest.raises(ScanPageError) as caught:
        render_page(huge, "pdf", 2)
    assert "大きすぎて" in str(caught.value)


def test_too_many_pages():
    for data, kind in ((pdf_bytes(201), "pdf"), (crafted_tiff([(8, 8)] * 201), "tiff")):
        for call in (lambda: page_count(data, kind), lambda: render_page(data, kind, 1)):
            with pytest.raises(ScanPageError) as caught:
                call()
            assert "200ページ" in str(caught.value)
    assert page_count(pdf_bytes(200), "pdf") == 200
    assert page_count(crafted_tiff([(8, 8)] * 200), "tiff") == 200


def test_callers_mistakes_are_not_scan_errors():
    with pytest.raises(ValueError):
        page_count(b"GIF89a", "gif")
    with pytest.raises(ValueError):
        render_page(two_page_pdf(), "pdf", 1, max_width=0)


def test_pillow_and_warnings_settings_are_left_alone():
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    for data in (crafted_png(10000, 10000), crafted_png(20000, 20000)):
        with pytest.raises(ScanPageError):
            render_page(data, "png", 1)
    render_page(image_bytes(Image.new("L", (10, 10)), "PNG"), "png", 1)
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters


def test_pages_rendered_from_several_threads_at_once():
    pdf, tiff = two_page_pdf(), three_frame_tiff()
    results, errors = [], []

    def work(index):
        try:
            kind, data = ("pdf", pdf) if index % 2 else ("tiff", tiff)
            results.append(decoded(render_page(data, kind, index % 2 + 1, max_width=600)).width)
        except Exception as error:  # reported by the assertion below
            errors.append(error)
    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 8 and all(width <= 600 for width in results)


def test_limits():
    assert scan_pages.MAX_PAGES == 200 and scan_pages.MAX_PIXELS == 60_000_000
