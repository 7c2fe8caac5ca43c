"""The ticket as a picture: every line, Vietnamese included, drawn with a Unicode font into one 1-bit image.

Why an image: cheap 58 mm printers have no Vietnamese code page and python-escpos silently prints
``M?i s?`` for what it cannot encode. Drawing NFC-normalised text with DejaVu Sans (on Raspberry Pi OS and
Debian's ``fonts-dejavu-core``) prints the same everywhere. Line heights come from the font's bounding box
of the actual text, because stacked marks (``Ệ``, ``Ộ``) rise above the ascender.

``TicketRenderer`` draws for one paper width (384 dots on 58 mm paper, 576 on 80 mm) in three strips, top
to bottom: the ``header`` (logo, hall name, the button's service name, "your number"), drawn once per button
and reused; the ``body``, the only part the controller's reply decides (the number, priority mark, the
"card read" mark, people ahead and wait, QR code, issue time); and the ``footer``, drawn once (twice: a
ticket linked to a citizen's card ends with the privacy notice). ``render`` stacks the three: the whole
ticket as printed. ``slip`` draws the refusal slip of a card that has had its tickets for the day.
No personal data is ever drawn: a card ticket only says that a card was read. ``dispenser.printer.TicketJobs``
keeps the header and footers encoded for the printer, so after the reply only the body is drawn.
"""

from __future__ import annotations

import unicodedata
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
QR_FIELDS: Final = ("ticket_id", "number", "service", "hall", "dispenser", "token")
# A phone reads a code from a thermal print reliably from about 20 mm across (160 dots at 203 dpi, the
# resolution of 58 and 80 mm printers alike) with modules of several dots: a one- or two-dot module spreads
# or fades on thermal paper. The quiet zone is the standard's four modules on every side.
QR_MIN_DOTS: Final = 160
QR_MIN_MODULE_DOTS: Final = 3
QR_QUIET_MODULES: Final = 4
# Breaking a line after these reads as a pause; the value is how strongly such a break is preferred over one
# between two words (in Vietnamese a space separates syllables, and a break there may split a word).
PAUSE_AFTER: Final = {".": 0.5, "!": 0.5, "?": 0.5, "/": 0.5, "—": 0.5, "–": 0.5, "-": 0.5, "·": 0.5, ":": 0.3,
                      ";": 0.3, ",": 0.25, ")": 0.2}
LONE_LAST_WORD_COST: Final = 4.0  # one word (one syllable, in Vietnamese) alone on a text's last line
LONE_WORD_COST: Final = 0.5  # one word alone on an earlier line
WORD_SPLIT_COST: Final = 0.15  # a break that may split a Vietnamese word (see _break_costs)
LINKING_WORDS_VI: Final = frozenset({"và", "hoặc", "của", "các", "những", "cho", "với", "tại", "từ", "theo", "về",
                                      "trong", "để", "đến"})
PAREN_MAX_WORDS: Final = 4  # a parenthesised phrase up to this long stays on one line: "(ưu tiên)"

CATEGORY_VI: Final = {"elderly": "Người cao tuổi", "disability": "Người khuyết tật", "pregnant": "Phụ nữ mang thai",
                      "child": "Trẻ em", "other": ""}
CATEGORY_EN: Final = {"elderly": "Elderly", "disability": "Disability", "pregnant": "Pregnant", "child": "Child",
                      "other": ""}
CARD_MARK: Final = ("Đã đọc thẻ", "Card read")
# The notice of Decree 13/2023/NĐ-CP on personal data: what was collected, why, and who keeps it. Short, so
# that it is read (three lines on 80 mm paper); the hall's full notice is posted in the hall. Vietnamese only:
# a CCCD is a Vietnamese citizen's card. It names what the hall keeps by default ([cards] keep, docs/privacy.md).
PRIVACY_VI: Final = ("Trung tâm lưu số CCCD, họ tên, ngày sinh, địa chỉ để quầy phục vụ bạn không cần khai lại "
                     "(Nghị định 13/2023/NĐ-CP).")
# What a refusal slip says, by the refusal's code: (title, reason, what to do), each in Vietnamese and English.
SLIP_TEXT: Final = {
    "card_limit": (("KHÔNG CẤP SỐ", "NO TICKET"),
                   ("Thẻ này đã lấy đủ số hôm nay.", "This card has had its tickets for today."),
                   ("Vui lòng hỏi quầy hướng dẫn.", "Please ask at the information desk.")),
}


def nfc(text: str) -> str:
    """Vietnamese in the composed form: decomposed marks are placed wrongly by most fonts' renderers."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, slots=True)
class TicketLayout:
    """What a ticket says besides the ticket itself.

    ``qr`` is a template with ``{ticket_id}``, ``{number}``, ``{service}``, ``{hall}``, ``{dispenser}``,
    ``{token}`` (empty: no QR code). ``{token}`` is the ticket's status-page token: with it the code opens the
    ticket's live page, a caption under the code says so, and a ticket without a token (from a controller older
    than the status page) prints no code rather than a dead link. ``english`` adds the English line under each
    Vietnamese one.
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


def qr_module_dots(modules: int, *, width_dots: int) -> int:
    """Dots per module (whole dots keep the code sharp) for a code ``modules`` wide: at least ``QR_MIN_DOTS``
    across and ``QR_MIN_MODULE_DOTS`` a module, and about a third of the paper where that is more (80 mm
    paper); fewer only where the code and its quiet zone would not fit on the paper."""
    box = max(-(-QR_MIN_DOTS // modules), round(width_dots / 3 / modules), QR_MIN_MODULE_DOTS)
    while box > 1 and (modules + 2 * QR_QUIET_MODULES) * box > width_dots:
        box -= 1
    return box


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
        self.size_notice = size(20, 18)
        self.number_max_height = size(220, 150)
        self._static: dict[str, Image.Image] = {}
        self._logo_block: Image.Image | None = None
        self._warmed = False

    # --- public ------------------------------------------------------------------------------------------

    def render(self, ticket: TicketInfo, button: ButtonSpec) -> Image.Image:
        """The whole ticket as printed: ``header(button)``, ``body(ticket)`` and ``footer(card=ticket.card)``."""
        return _stack([self.header(button), self.body(ticket), self.footer(card=ticket.card)], self.width)

    def body(self, ticket: TicketInfo) -> Image.Image:
        """What the controller's reply decides: the number, priority and card marks, people ahead and wait, QR
        code, time."""
        blocks = [self._number(ticket.number)]
        if ticket.priority:
            blocks += [self._spacer(4), self._priority_mark(ticket.category), self._spacer(8)]
        if ticket.card:
            blocks += [self._spacer(4 if ticket.priority else 0), self._card_mark(), self._spacer(8)]
        blocks.append(self._wait(ticket))
        content = self.qr_content(ticket)
        if content is not None:
            blocks.append(self._qr(content))
            if self.follows:
                texts = ["Quét mã để theo dõi lượt của bạn"] + (["Scan to follow your turn"] if self.layout.english
                                                                else [])
                blocks += [self._lines(texts, bold=False, size=self.size_text), self._spacer(6)]
        else:
            blocks.append(self._spacer(6))
        blocks.append(self._lines([self._moment(ticket.issued_at)], bold=True, size=self.size_text))
        return _stack(blocks, self.width)

    @property
    def follows(self) -> bool:
        """The QR code opens the ticket's live status page (its template has ``{token}``)."""
        return "{token}" in self.layout.qr

    def qr_content(self, ticket: TicketInfo) -> str | None:
        """The QR code's text for ``ticket``; None: no code (none configured, or a status-page link and the
        ticket has no token)."""
        if not self.layout.qr or (self.follows and ticket.token is None):
            return None
        return self.layout.qr.format(ticket_id=ticket.id, number=ticket.number, service=ticket.service,
                                     hall=self.layout.hall_id, dispenser=self.layout.dispenser_id,
                                     token=ticket.token or "")

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

    def footer(self, *, card: bool = False) -> Image.Image:
        """The rule and footer text (a blank dot row without a footer), and for a ticket linked to a card the
        privacy notice below them: each drawn once, then reused."""
        name = "card" if card else ""  # button keys are one letter or digit, never these
        cached = self._static.get(name)
        if cached is None:
            blocks = [self._rule(), self._lines([self.layout.footer], bold=False, size=self.size_small)]
            if not self.layout.footer:
                blocks = [self._spacer(1)]
            if card:
                blocks += [self._rule() if not self.layout.footer else self._spacer(10), self._privacy()]
            cached = self._static[name] = _stack(blocks, self.width)
        return cached

    def slip(self, code: str) -> Image.Image:
        """The refusal slip for ``code`` (a key of ``SLIP_TEXT``): the hall, "no ticket", why and what to do."""
        name = f"slip:{code}"
        cached = self._static.get(name)
        if cached is None:
            title, reason, advice = SLIP_TEXT[code]
            english = self.layout.english

            def say(pair: tuple[str, str]) -> list[str]:
                return [pair[0]] + ([pair[1]] if english else [])

            blocks = [self._lines([self.layout.hall_name], bold=True, size=self.size_hall), self._rule(),
                      self._lines(say(title), bold=True, size=self.size_service), self._spacer(8),
                      self._lines(say(reason), bold=False, size=self.size_text), self._spacer(6),
                      self._lines(say(advice), bold=False, size=self.size_small), self._spacer(12)]
            cached = self._static[name] = _stack(blocks, self.width)
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

    def _lines(self, texts: list[str], *, bold: bool, size: int, invert: bool = False,
               wrap_dots: int | None = None) -> Image.Image:
        """Centred text, wrapped to the paper (or ``wrap_dots``); each text starts a new line."""
        font = _font(self.layout.font_bold if bold else self.layout.font, size)
        rendered = [_text_line(line, font, self.width, invert=invert)
                    for text in texts for line in wrap(nfc(text), font, wrap_dots or self.inner)]
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
        # Wrapped inside the black box with a few dots of black either side of the text.
        inner = self._lines(lines, bold=True, size=self.size_mark if not self.layout.english else self.size_text,
                            invert=True, wrap_dots=self.inner - 16)
        framed = Image.new("1", (self.width, inner.height + 12), 1)
        ImageDraw.Draw(framed).rectangle((self.margin, 0, self.width - self.margin - 1, framed.height - 1), fill=0)
        framed.paste(inner.crop((self.margin + 4, 0, self.width - self.margin - 4, inner.height)),
                     (self.margin + 4, 6))
        return framed

    def _card_mark(self) -> Image.Image:
        """"Card read" in a thin frame: plain to see, lighter than the priority mark."""
        text = " · ".join(CARD_MARK) if self.layout.english else CARD_MARK[0]
        pad = 12
        inner = self._lines([text], bold=True, size=self.size_small, wrap_dots=self.inner - 2 * pad)
        ink = max(_ink_width(_font(self.layout.font_bold, self.size_small), line)
                  for line in wrap(nfc(text), _font(self.layout.font_bold, self.size_small), self.inner - 2 * pad))
        half = min(self.inner, round(ink) + 2 * pad) // 2
        framed = Image.new("1", (self.width, inner.height + 8), 1)
        framed.paste(inner, (0, 4))
        ImageDraw.Draw(framed).rectangle((self.width // 2 - half, 0, self.width // 2 + half, framed.height - 1),
                                         outline=0, width=2)
        return framed

    def _privacy(self) -> Image.Image:
        return self._lines([PRIVACY_VI], bold=False, size=self.size_notice)

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
        """The code centred, with its quiet zone of white above and below (beside it the paper is white)."""
        # A fixed mask: searching the best of eight costs ~25 ms of the 20 ms budget, and every mask is valid.
        code = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=4)
        code.add_data(content)
        code.make(fit=True)
        matrix = code.get_matrix()
        box = qr_module_dots(len(matrix), width_dots=self.width)
        image = Image.new("1", (len(matrix), len(matrix)), 1)
        image.putdata([0 if dark else 1 for row in matrix for dark in row])
        image = image.resize((image.width * box, image.height * box), Image.Resampling.NEAREST)
        quiet = QR_QUIET_MODULES * box
        block = Image.new("1", (self.width, image.height + 2 * quiet), 1)
        block.paste(image, ((self.width - image.width) // 2, quiet))
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


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` in lines whose ink (``font.getbbox``) is at most ``width`` dots wide; each newline starts one.

    A paragraph takes the fewest lines it can, and among those the breaks that make the lines even (the text
    is centred), end lines at pauses (``/``, ``—``, ``.``, ``,``...), and leave no word alone on a line, the
    last line above all, wherever another break allows: "Kiểm tra máy in" does not leave "in" by itself.
    A parenthesised phrase of up to ``PAREN_MAX_WORDS`` words and a lone mark with the word before it
    (``Đất đai -``) are never split. A word wider than the paper is broken between characters.
    """
    if "\n" not in text and _ink_width(font, text) <= width:
        return [text]  # the common case, measured once
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        units = [piece for unit in _units(paragraph.split()) for piece in _fitting(unit, font, width)]
        lines += _balanced(units, font, width) if units else [""]
    return lines


def _ink_width(font: ImageFont.FreeTypeFont, text: str) -> float:
    left, _, right, _ = font.getbbox(text)
    return right - left


def _units(words: list[str]) -> list[str]:
    """The words, joined where a line must not break: a short parenthesised phrase, a mark and its word."""
    units: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not any(ch.isalnum() for ch in word) and units:
            units[-1] = f"{units[-1]} {word}"  # "—", "-", "/": never at the start of a line
            i += 1
            continue
        end = i + 1
        if word.startswith("("):
            close = next((k for k in range(i, min(i + PAREN_MAX_WORDS, len(words))) if words[k].endswith(")")),
                         None)
            if close is not None:
                end = close + 1
        units.append(" ".join(words[i:end]))
        i = end
    return units


def _fitting(unit: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``unit`` as pieces that each fit: whole if it fits, else its words, a too-wide word cut by characters."""
    if _ink_width(font, unit) <= width:
        return [unit]
    pieces: list[str] = []
    for word in unit.split(" "):
        rest = word
        while _ink_width(font, rest) > width:
            cut = len(rest)
            while cut > 1 and _ink_width(font, rest[:cut]) > width:
                cut -= 1
            pieces.append(rest[:cut])
            rest = rest[cut:]
        pieces.append(rest)
    return pieces


def _balanced(units: list[str], font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """The fewest lines, and among those the cheapest: even lines, the breaks of ``_break_costs``, no word
    alone on a line where that can be helped. Each unit fits on a line by itself."""
    n = len(units)
    words = [sum(1 for word in unit.split() if any(ch.isalnum() for ch in word)) for unit in units]
    after = _break_costs(units, words)
    # best[i]: (lines, cost, end of the first line) of the best way to set units[i:]; compared as tuples,
    # so fewer lines always win, and the cost decides between equally many.
    best: list[tuple[int, float, int]] = [(0, 0.0, n)] * (n + 1)
    for i in range(n - 1, -1, -1):
        choice: tuple[int, float, int] | None = None
        for j in range(i + 1, n + 1):
            ink = _ink_width(font, " ".join(units[i:j]))
            if ink > width and j > i + 1:
                break
            cost = (1 - ink / width) ** 2  # the text is centred: the cost of a line is its empty share, squared
            if sum(words[i:j]) == 1:
                cost += LONE_LAST_WORD_COST if j == n else LONE_WORD_COST
            lines, rest, _ = best[j]
            candidate = (lines + 1, cost + rest + (after[j - 1] if j < n else 0.0), j)
            if choice is None or candidate[:2] < choice[:2]:
                choice = candidate
        assert choice is not None  # units[i] alone always fits
        best[i] = choice
    setting: list[str] = []
    i = 0
    while i < n:
        j = best[i][2]
        setting.append(" ".join(units[i:j]))
        i = j
    return setting


def _break_costs(units: list[str], words: list[int]) -> list[float]:
    """What a line break after each unit adds: less at a pause; in Vietnamese, more after an odd syllable of
    a phrase, since most words there are two syllables ("hành chính", "xã hội") and the break may split one.
    A one-syllable linking word ("và", "của"...) is a word of its own: a break beside it splits nothing."""
    vietnamese = any(_is_vietnamese_letter(ch) for unit in units for ch in unit)
    costs: list[float] = []
    syllables = 0  # since the phrase began
    for k, (unit, count) in enumerate(zip(units, words, strict=True)):
        syllables += count
        pause = PAUSE_AFTER.get(unit[-1], 0.0)
        linking = unit.lower() in LINKING_WORDS_VI
        if linking or pause:
            syllables = 0
        if pause:
            costs.append(-pause)
        elif vietnamese and syllables % 2 and not (k + 1 < len(units) and units[k + 1].split()[0].lower()
                                                   in LINKING_WORDS_VI):
            costs.append(WORD_SPLIT_COST)
        else:
            costs.append(0.0)
    return costs


def _is_vietnamese_letter(ch: str) -> bool:
    return ch in "đĐ" or (ch.isalpha() and not ch.isascii() and unicodedata.decomposition(ch) != "")


def _stack(blocks: list[Image.Image], width: int, *, background: int = 255) -> Image.Image:
    height = sum(b.height for b in blocks)
    stacked = Image.new("1", (width, max(height, 1)), 1 if background else 0)
    y = 0
    for block in blocks:
        stacked.paste(block.convert("1") if block.mode != "1" else block, (0, y))
        y += block.height
    return stacked


def sample_ticket(*, hall_id: str, issued_at: datetime | None = None) -> tuple[TicketInfo, ButtonSpec]:
    """A made-up ticket for ``print-test``: marked as a test so nobody queues with it. ``issued_at`` is printed
    as given: the caller's clock, in the hall's time zone (a fixed moment when only drawing, e.g. a warm-up)."""
    from datetime import UTC  # noqa: PLC0415 - only the test ticket needs a time zone

    moment = issued_at or datetime(2000, 1, 1, 8, 0, tzinfo=UTC)
    ticket = TicketInfo(id=f"test-{hall_id}", number="A000", service="TEST", priority=True, category="elderly",
                        issued_at=moment, ahead=3, estimated_wait_s=930, token="0" * 24)
    button = ButtonSpec(key="test", service="TEST", priority=True, category="elderly",
                        label_vi="IN THỬ — Kiểm tra máy in", label_en="TEST PRINT — printer check")
    return ticket, button

