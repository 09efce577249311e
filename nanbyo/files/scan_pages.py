"""Page images of a stored scan (PDF, TIFF, JPEG or PNG) for the screen that shows it beside the document.

Each page is decoded here and re-encoded as a fresh PNG no wider than asked, so the uploaded bytes themselves are never
served inline. Hostile files (decompression bombs, too many pages, corrupt data) end in ScanPageError, whose message
is for the user.
"""
import contextlib
import io
import itertools
import math
import threading
import warnings

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

MAX_PAGES = 200
MAX_PIXELS = 60_000_000  # per page as stored: an A4 page scanned at 600 dpi is 35 MP
MAX_DPI = 200  # more than a screen needs, however small the page
PDF_OBJECTS_LOOKED_AT = 5000  # page objects searched for embedded images, so a crafted page cannot keep us busy

UNREADABLE = "スキャンファイルを画像として表示できません。ダウンロードして確かめてください。"
NO_PAGE = "そのページはありません。"
TOO_LARGE = "スキャンの画像が大きすぎて表示できません。ダウンロードして確かめてください。"
TOO_MANY = f"スキャンのページが多すぎて（{MAX_PAGES}ページ超）表示できません。ダウンロードして確かめてください。"

PILLOW_FORMATS = {"tiff": "TIFF", "jpeg": "JPEG", "png": "PNG"}
ORIENTATION = 0x0112  # EXIF tag
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}

# PDFium is not thread-safe, not even across documents: every call into it (closing included) holds this lock.
_pdfium_lock = threading.Lock()
# warnings.catch_warnings() swaps the process-wide filter list; two threads overlapping could leave our "error"
# filter in place for everyone, so they take turns (only around Image.open, where Pillow warns).
_warnings_lock = threading.Lock()


class ScanPageError(Exception):
    """A scan (or one of its pages) that cannot be shown; the message, in Japanese, is for the user."""


def page_count(data: bytes, file_type: str) -> int:
    """How many pages the scan has (a JPEG or PNG has one)."""
    _check_type(file_type)
    if file_type == "pdf":
        with _pdfium_lock, _library_errors():
            pdf = pdfium.PdfDocument(data)
            try:
                return _pdf_pages(pdf)
            finally:
                pdf.close()
    with _library_errors(), _open_image(data, file_type) as image:
        return _image_pages(image, file_type)


def render_page(data: bytes, file_type: str, page: int, max_width: int = 1400) -> bytes:
    """PNG bytes of page `page` (from 1), at most max_width pixels wide."""
    _check_type(file_type)
    if max_width < 1:
        raise ValueError("max_width must be positive")
    if file_type == "pdf":
        return _encode(_pdf_page(data, page, max_width), max_width)
    with _library_errors(), _open_image(data, file_type) as image:
        if not 1 <= page <= _image_pages(image, file_type):
            raise ScanPageError(NO_PAGE)
        if file_type == "tiff":
            image.seek(page - 1)  # counting the pages left it on the last
        return _encode(_decoded(image, file_type, max_width), max_width)


def _check_type(file_type):
    # A caller's mistake, not the user's file: not a ScanPageError.
    if file_type != "pdf" and file_type not in PILLOW_FORMATS:
        raise ValueError(f"unknown scan type {file_type!r}")


@contextlib.contextmanager
def _library_errors():
    """Whatever PDFium or Pillow raises becomes ScanPageError: a corrupt or hostile file makes them raise almost
    anything (OSError, ValueError, SyntaxError, struct.error...)."""
    try:
        yield
    except ScanPageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as error:
        raise ScanPageError(TOO_LARGE) from error
    except Exception as error:
        raise ScanPageError(UNREADABLE) from error


def _pdf_pages(pdf) -> int:
    count = len(pdf)
    if count < 1:
        raise ScanPageError(UNREADABLE)
    if count > MAX_PAGES:
        raise ScanPageError(TOO_MANY)
    return count


def _pdf_page(data: bytes, page: int, max_width: int) -> Image.Image:
    with _pdfium_lock, _library_errors():
        pdf = pdfium.PdfDocument(data)
        try:
            pdf.init_forms()  # filled-in form fields are drawn only with a form environment, made before any page
            if not 1 <= page <= _pdf_pages(pdf):
                raise ScanPageError(NO_PAGE)
            pdf_page = pdf[page - 1]
            try:
                _refuse_huge_images(pdf_page)
                width, height = pdf_page.get_size()  # in points (1/72 in), the page's own rotation applied
                if not (width > 0 and height > 0):
                    raise ScanPageError(UNREADABLE)
                # ceil(width * scale) must not pass max_width, whatever the float rounding.
                scale = min((max_width - 0.5) / width, MAX_DPI / 72, math.sqrt(MAX_PIXELS / (width * height)))
                bitmap = pdf_page.render(scale=scale, rev_byteorder=True)
                try:
                    # A copy that outlives the bitmap, so that the slow PNG encoding runs outside the lock.
                    return bitmap.to_pil().copy()
                finally:
                    bitmap.close()
            finally:
                pdf_page.close()
        finally:
            pdf.close()


def _refuse_huge_images(pdf_page):
    """PDFium decodes an embedded image whole, however small it is drawn: the same bomb as a huge TIFF."""
    objects = itertools.islice(pdf_page.get_objects(max_depth=4), PDF_OBJECTS_LOOKED_AT)
    for item in objects:
        if item.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            width, height = item.get_px_size()
            if width * height > MAX_PIXELS:
                raise ScanPageError(TOO_LARGE)


def _open_image(data: bytes, file_type: str) -> Image.Image:
    # Only the plugin of the type the magic bytes named. Pillow warns (DecompressionBombWarning) past its own limit
    # while reading the header; made an error here, it is refused with everything past ours (see _check_size).
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[file_type]])


def _image_pages(image: Image.Image, file_type: str) -> int:
    if file_type != "tiff":
        return 1  # an animated PNG or a multi-picture JPEG is shown as the single picture a browser shows
    # Frame by frame rather than n_frames, so that a file of thousands of pages is given up after MAX_PAGES.
    for index in range(MAX_PAGES + 1):
        try:
            image.seek(index)
        except EOFError:
            return index
    raise ScanPageError(TOO_MANY)


def _check_size(size):
    """Before any pixel is decoded: the header's size alone decides."""
    width, height = size
    if width < 1 or height < 1:
        raise ScanPageError(UNREADABLE)
    if width * height > MAX_PIXELS:
        raise ScanPageError(TOO_LARGE)


def _fit(size, max_width):
    width, height = size
    if width <= max_width:
        return size
    return max_width, max(1, round(height * max_width / width))


def _decoded(image, file_type, max_width) -> Image.Image:
    """The current frame, decoded, upright and at most max_width wide, in a mode PNG stores (L or RGB)."""
    _check_size(image.size)
    # Pillow turns a TIFF upright itself (its size is already the upright one); a JPEG or PNG keeps its EXIF
    # orientation, which browsers apply, so the page is shown the same way as when the file is opened.
    orientation = None if file_type == "tiff" else _orientation(image)
    sideways = orientation in (5, 6, 7, 8)
    stored = image.size
    wanted = _fit(stored[::-1], max_width)[::-1] if sideways else _fit(stored, max_width)
    if file_type == "jpeg" and wanted != stored:
        image.draft(None, wanted)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, no smaller than wanted: far faster
    image.load()
    image = _resizable(image)
    if image.size != wanted:
        image = image.resize(wanted, Image.Resampling.LANCZOS, reducing_gap=3.0)
    image = _shown_mode(image)
    if orientation in TRANSPOSE:
        image = image.transpose(TRANSPOSE[orientation])
    return image


def _orientation(image):
    try:
        return image.getexif().get(ORIENTATION)
    except Exception:
        return None  # a damaged EXIF block does not make the picture itself unreadable


def _resizable(image):
    """Pillow resizes 1-bit and palette images by nearest neighbour only, which loses thin lines of text."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    return image


def _shown_mode(image):
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # More than 8 bits of grey: scaled down from the smallest power-of-two range its values fit in, so that
        # 16-bit data keeps its tones and a 12-bit scanner's (stored in 16 bits) is not shown almost black.
        image = image.convert("F") if image.mode == "F" else image.convert("I")
        high = image.getextrema()[1]
        top = 1 if image.mode == "F" and high <= 1 else 2 ** max(8, int(high).bit_length()) - 1
        return image.point(lambda value: value * (255 / top)).convert("L")
    if "A" in image.getbands() or image.mode in ("RGBa", "La"):
        # Transparent parts are shown as paper (white), not as whatever lies behind the picture.
        return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB...


def _encode(image: Image.Image, max_width: int) -> bytes:
    with _library_errors():
        if image.width > max_width:  # only a PDF page rendered a pixel too wide could be
            image = image.resize(_fit(image.size, max_width), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False)
        return out.getvalue()
