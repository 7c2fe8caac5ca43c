"""The ticket as a picture: every line, Vietnamese included, drawn with a Unicode font into one 1-bit image.

Why an image: cheap 58 mm printers have no Vietnamese code page and python-escpos silently prints
``M?i s?`` for what it cannot encode. Drawing NFC-normalised text with DejaVu Sans (on Raspberry Pi OS and
Debian's ``fonts-dejavu-core``) prints the same everywhere. Line heights come from the font's bounding box
of the actual text, because stacked marks (``Ệ``, ``Ộ``) rise above the ascender.

``TicketRenderer`` draws for one paper width (384 dots on 58 mm paper, 576 on 80 mm) in three strips, top
to bottom: the ``header`` (logo, hall name, the button's service name, "your number"), drawn once per button
and reused; the ``body``, the only part the controller's reply decides (the number, priority mark, people
ahead and wait, QR code, issue time); and the ``footer``, drawn once. ``render`` stacks the three: the
whole ticket as printed. ``dispenser.printer.TicketJobs`` keeps the header and footer encoded for the
printer, so after the reply only the body is drawn.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Final

import qrcode
from PIL import Image, ImageDraw, ImageFont

from dispenser.core import ButtonSpec
from hallq.wire import TicketInfo

FONT_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_FONT: Final = FONT_DIR / "DejaVuSans.ttf"
DEFAULT_BOLD_FONT: Final = FONT_DIR / "DejaVuSans-Bold.ttf"
PAPER_DOTS: Final = {58: 384, 80: 576}
NUMBER_SIZE_STEP: Final = 4
QR_FIELDS: Final = ("ticket_id", "number", "service", "hall", "dispenser")

CATEGORY_VI: Final = {"elderly": "Người cao tuổi", "disability": "Người khuyết tật", "pregnant": "Phụ nữ mang thai",
                      "child": "Trẻ em", "other": ""}
CATEGORY_EN: Final = {"elderly": "Elderly", "disability": "Disability", "pregnant": "Pregnant", "child": "Child",
                      "other": ""}


def nfc(text: str) -> str:
    """Vietnamese in the composed form: decomposed marks are placed wrongly by most fonts' renderers."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, slots=True)
class TicketLayout:
    """What a ticket says besides the ticket itself.

    ``qr`` is a template with ``{ticket_id}``, ``{number}``, ``{service}``, ``{hall}``, ``{dispenser}``
    (empty: no QR code). ``english`` adds the English line under each Vietnamese one.
    """

    hall_name: str
    hall_id: str
    dispenser_id: str
    english: bool = True
    qr: str = ""
    footer: str = ""
    logo: Path | None = None
    font: Path = DEFAULT_FONT
    font_bold: Path = DEFAULT_BOLD_FONT


@lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def format_wait(seconds: int, *, english: bool) -> str:
    """``930`` → ``khoảng 16 phút`` / ``about 16 min``; under a minute says so."""
    if seconds < 60:
        return "under 1 min" if english else "dưới 1 phút"
    minutes = -(-seconds // 60)
    hours, rest = divmod(minutes, 60)
    if english:
        text = f"{hours} h {rest} min" if hours else f"{minutes} min"
        return f"about {text}"
    text = f"{hours} giờ {rest} phút" if hours else f"{minutes} phút"
    return f"khoảng {text}"


class TicketRenderer:
    """Draws tickets ``width_dots`` wide (384 or 576); ``render`` returns a mode ``"1"`` image."""

    def __init__(self, layout: TicketLayout, *, width_dots: int) -> None:
        if width_dots < 200:
            raise ValueError(f"paper of {width_dots} dots is too narrow for a ticket")
        self.layout = layout
        self.width = width_dots
        self.margin = 8
        self.inner = width_dots - 2 * self.margin
        # Sizes are designed for 80 mm paper and scaled down, but never below what a person reads at arm's length.
        scale = width_dots / 576

        def size(base: int, floor: int) -> int:
            return max(floor, round(base * scale))

        self.size_hall = size(30, 22)
        self.size_service = size(42, 30)
        self.size_text = size(28, 22)
        self.size_small = size(24, 20)
        self.size_mark = size(36, 28)
        self.number_max_height = size(220, 150)
        self._static: dict[str, Image.Image] = {}
        self._logo_block: Image.Image | None = None
        self._warmed = False

    # --- public ------------------------------------------------------------------------------------------

    def render(self, ticket: TicketInfo, button: ButtonSpec) -> Image.Image:
        """The whole ticket as printed: ``header(button)``, ``body(ticket)`` and ``footer()``, stacked."""
        return _stack([self.header(button), self.body(ticket), self.footer()], self.width)

    def body(self, ticket: TicketInfo) -> Image.Image:
        """What the controller's reply decides: the number, priority mark, people ahead and wait, QR code, time."""
        blocks = [self._number(ticket.number)]
        if ticket.priority:
            blocks += [self._spacer(4), self._priority_mark(ticket.category), self._spacer(8)]
        blocks.append(self._wait(ticket))
        if self.layout.qr:
            blocks += [self._spacer(8), self._qr(self.qr_content(ticket))]
        blocks += [self._spacer(6), self._lines([self._moment(ticket.issued_at)], bold=True, size=self.size_text)]
        return _stack(blocks, self.width)

    def qr_content(self, ticket: TicketInfo) -> str:
        return self.layout.qr.format(ticket_id=ticket.id, number=ticket.number, service=ticket.service,
                                     hall=self.layout.hall_id, dispenser=self.layout.dispenser_id)

    def prepare(self, button: ButtonSpec) -> None:
        """Draw the button's fixed parts, and one throwaway ticket, now (at start): loading fonts and
        drawing a first QR code would otherwise make the first citizen's ticket the slowest. The body's warm-up
        is the same for every button: done once."""
        self.header(button)
        if self._warmed:
            return
        sample, _ = sample_ticket(hall_id=self.layout.hall_id)
        self.render(sample, button)
        for number in ("A000", "A888", "UB000", "UB888", "ABC000"):  # the usual shapes of a number
            self._number(number)
        self._warmed = True

    def header(self, button: ButtonSpec) -> Image.Image:
        """Logo, hall name, the button's service name and "your number": drawn once per button, then reused."""
        cached = self._static.get(button.key)
        if cached is not None:
            return cached
        blocks: list[Image.Image] = []
        if self.layout.logo is not None:
            if self._logo_block is None:  # the same on every button's header: read and scaled once
                self._logo_block = self._logo(self.layout.logo)
            blocks += [self._logo_block, self._spacer(6)]
        blocks += [self._lines([self.layout.hall_name], bold=True, size=self.size_hall), self._rule()]
        blocks.append(self._lines([button.label_vi], bold=True, size=self.size_service))
        if self.layout.english and button.label_en:
            blocks.append(self._lines([button.label_en], bold=False, size=self.size_small))
        label = ["Số thứ tự của bạn"] + (["Your number"] if self.layout.english else [])
        blocks += [self._spacer(6), self._lines(label, bold=False, size=self.size_small)]
        header = _stack(blocks, self.width)
        self._static[button.key] = header
        return header

    def footer(self) -> Image.Image:
        """The rule and footer text (a blank dot row without a footer): drawn once, then reused."""
        cached = self._static.get("")  # button keys are never empty
        if cached is None:
            blocks = [self._rule(), self._lines([self.layout.footer], bold=False, size=self.size_small)]
            cached = self._static[""] = _stack(blocks if self.layout.footer else [self._spacer(1)], self.width)
        return cached

    # --- blocks --------------------------------------------------------------------------------------------

    def _logo(self, path: Path) -> Image.Image:
        with Image.open(path) as source:
            logo = source.convert("L")
        max_h = self.width // 4
        logo.thumbnail((self.inner, max_h))
        block = Image.new("L", (self.width, logo.height), 255)
        block.paste(logo, ((self.width - logo.width) // 2, 0))
        return block.convert("1")  # Floyd-Steinberg: a photo or shaded logo keeps its tones on a 1-bit printer

    def _lines(self, texts: list[str], *, bold: bool, size: int, invert: bool = False) -> Image.Image:
        """Centred text, wrapped to the paper; each text starts a new line."""
        font = _font(self.layout.font_bold if bold else self.layout.font, size)
        rendered = [_text_line(line, font, self.width, invert=invert)
                    for text in texts for line in _wrap(nfc(text), font, self.inner)]
        return _stack(rendered, self.width, background=0 if invert else 255)

    def _number(self, number: str) -> Image.Image:
        path = self.layout.font_bold
        reference = 100
        width_at_reference = _font(path, reference).getlength(number)
        size = int(reference * self.inner * 0.94 / max(width_at_reference, 1))
        # Sizes in steps of NUMBER_SIZE_STEP: a handful of sizes whose glyphs FreeType has already drawn,
        # instead of a new size, cold, for almost every number (a 20-30 ms first rendering).
        size = min(size, self.number_max_height) // NUMBER_SIZE_STEP * NUMBER_SIZE_STEP
        font = _font(path, size)
        left, top, right, bottom = font.getbbox(number)
        while right - left > self.inner and size > NUMBER_SIZE_STEP:
            size -= NUMBER_SIZE_STEP
            font = _font(path, size)
            left, top, right, bottom = font.getbbox(number)
        # The number is the reason for the ticket: tight box (no ascender space), centred on the ink.
        pad = 6
        block = Image.new("L", (self.width, round(bottom - top) + 2 * pad), 255)
        x = (self.width - (right - left)) // 2 - left
        ImageDraw.Draw(block).text((x, pad - top), number, font=font, fill=0)
        return _threshold(block)

    def _priority_mark(self, category: str | None) -> Image.Image:
        vi = "ƯU TIÊN"
        en = "PRIORITY"
        if category and CATEGORY_VI.get(category):
            vi = f"{vi} · {CATEGORY_VI[category]}"
            en = f"{en} · {CATEGORY_EN[category]}"
        lines = [vi] + ([en] if self.layout.english else [])
        inner = self._lines(lines, bold=True, size=self.size_mark if not self.layout.english else self.size_text,
                            invert=True)
        framed = Image.new("1", (self.width, inner.height + 12), 1)
        ImageDraw.Draw(framed).rectangle((self.margin, 0, self.width - self.margin - 1, framed.height - 1), fill=0)
        framed.paste(inner.crop((self.margin + 4, 0, self.width - self.margin - 4, inner.height)),
                     (self.margin + 4, 6))
        return framed

    def _wait(self, ticket: TicketInfo) -> Image.Image:
        english = self.layout.english
        if ticket.ahead == 0:
            texts = ["Bạn là người tiếp theo"] + (["You are next"] if english else [])
        else:
            texts = [f"Trước bạn: {ticket.ahead} người"] + ([f"People ahead: {ticket.ahead}"] if english else [])
            texts.append(f"Chờ {format_wait(ticket.estimated_wait_s, english=False)}")
            if english:
                texts.append(f"Wait {format_wait(ticket.estimated_wait_s, english=True)}")
        return self._lines(texts, bold=False, size=self.size_text)

    def _qr(self, content: str) -> Image.Image:
        # A fixed mask: searching the best of eight costs ~25 ms of the 20 ms budget, and every mask is valid.
        code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=4)
        code.add_data(content)
        code.make(fit=True)
        modules = code.modules_count + 4
        # Whole dots per module keep the code sharp; about a third of the paper is easy to scan.
        box = max(2, (self.width * 2 // 5) // modules)
        matrix = code.get_matrix()
        image = Image.new("1", (len(matrix), len(matrix)), 1)
        image.putdata([0 if dark else 1 for row in matrix for dark in row])
        image = image.resize((image.width * box, image.height * box), Image.Resampling.NEAREST)
        block = Image.new("1", (self.width, image.height), 1)
        block.paste(image, ((self.width - image.width) // 2, 0))
        return block

    def _moment(self, moment: datetime) -> str:
        return moment.strftime("%H:%M  %d/%m/%Y")

    def _rule(self) -> Image.Image:
        block = Image.new("1", (self.width, 14), 1)
        ImageDraw.Draw(block).line((self.margin, 6, self.width - self.margin, 6), fill=0, width=2)
        return block

    def _spacer(self, height: int) -> Image.Image:
        return Image.new("1", (self.width, height), 1)


# --- drawing helpers --------------------------------------------------------------------------------------------

def _threshold(image: Image.Image) -> Image.Image:
    """Anti-aliased grey text to crisp 1-bit without dithering (dither makes small text fuzzy on paper).

    Without dithering Pillow's conversion is the threshold itself: grey 128 and above is white, below black.
    """
    return image.convert("1", dither=Image.Dither.NONE)


def _text_line(text: str, font: ImageFont.FreeTypeFont, width: int, *, invert: bool) -> Image.Image:
    ascent, descent = font.getmetrics()
    left, top, right, bottom = font.getbbox(text)
    above = max(0, -top)  # marks stacked above the ascender
    height = round(above + max(ascent + descent, bottom)) + 4
    block = Image.new("L", (width, height), 0 if invert else 255)
    x = (width - (right - left)) // 2 - left
    ImageDraw.Draw(block).text((x, above + 2), text, font=font, fill=255 if invert else 0)
    return _threshold(block)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the paper is broken by characters."""
    if "\n" not in text and font.getlength(text) <= width:
        return [text]  # the common case, measured once
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = word
            while font.getlength(current) > width:
                cut = _fit_prefix(current, font.getlength, width)
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current)
    return lines


def _fit_prefix(word: str, measure: Callable[[str], float], width: int) -> int:
    cut = len(word)
    while cut > 1 and measure(word[:cut]) > width:
        cut -= 1
    return cut


def _stack(blocks: list[Image.Image], width: int, *, background: int = 255) -> Image.Image:
    height = sum(b.height for b in blocks)
    stacked = Image.new("1", (width, max(height, 1)), 1 if background else 0)
    y = 0
    for block in blocks:
        stacked.paste(block.convert("1") if block.mode != "1" else block, (0, y))
        y += block.height
    return stacked


def sample_ticket(*, hall_id: str) -> tuple[TicketInfo, ButtonSpec]:
    """A made-up ticket for ``print-test``: marked as a test so nobody queues with it."""
    from datetime import UTC  # noqa: PLC0415 - only the test ticket needs a clock

    ticket = TicketInfo(id=f"test-{hall_id}", number="A000", service="TEST", priority=True, category="elderly",
                        issued_at=datetime.now(UTC).astimezone(), ahead=3, estimated_wait_s=930)
    button = ButtonSpec(key="test", service="TEST", priority=True, category="elderly",
                        label_vi="IN THỬ — Kiểm tra máy in", label_en="TEST PRINT — printer check")
    return ticket, button

