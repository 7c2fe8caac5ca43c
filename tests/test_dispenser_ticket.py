"""The ticket on paper: drawn for 58 and 80 mm, read back from the ESC/POS bytes a printer would get.

The suite writes ``build/previews/dispenser-ticket-58mm.png`` and ``-80mm.png`` for a person to look at.
"""

from __future__ import annotations

import shutil
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from escpos.printer import Dummy, File
from PIL import Image, ImageChops, ImageFont

from dispenser.core import ButtonSpec
from dispenser.printer import TicketJobs, _profile, build_job, read_job
from dispenser.ticket import (
    DEFAULT_BOLD_FONT,
    DEFAULT_FONT,
    PAPER_DOTS,
    TicketLayout,
    TicketRenderer,
    _threshold,
    format_wait,
    wrap,
)
from hallq.wire import TicketInfo
from tests.test_dispenser_helpers import PREVIEWS, decode_qr

HALL_TIME = timezone(timedelta(hours=7))
LAYOUT = TicketLayout(
    hall_name="Trung tâm Phục vụ hành chính công Quận 1, Thành phố Hồ Chí Minh", hall_id="hcm-q1",
    dispenser_id="d1", english=True, qr="https://hcm-q1.example.gov.vn/ticket/{ticket_id}?n={number}",
    footer="Vui lòng chờ gọi số. Xin cảm ơn! / Please wait for your number. Thank you!",
)
PRIORITY_BUTTON = ButtonSpec(key="4", service="B", priority=True, category="elderly",
                             label_vi="Đất đai - Xây dựng", label_en="Land and construction")
REGULAR_BUTTON = ButtonSpec(key="1", service="A", label_vi="Hộ tịch", label_en="Civil status registration")


def a_ticket(number: str = "UB015", *, priority: bool = True, ahead: int = 12) -> TicketInfo:
    return TicketInfo(id="5f0c2d7e9a8b4c3d", number=number, service="B", priority=priority,
                      category="elderly" if priority else None, issued_at=datetime(2026, 11, 27, 8, 15, 2, tzinfo=HALL_TIME),
                      ahead=ahead, estimated_wait_s=2730)


def ink_columns(image: Image.Image) -> tuple[int, int]:
    """The leftmost and rightmost columns with a black dot."""
    box = ImageChops.invert(image.convert("L")).getbbox()
    assert box is not None
    return box[0], box[2]


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_ticket_preview_for_each_width_is_written_from_the_printed_bytes(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    job = build_job(TicketRenderer(LAYOUT, width_dots=width).render(a_ticket(), PRIORITY_BUTTON),
                    profile="default", width_dots=width)
    picture = read_job(job).picture()
    PREVIEWS.mkdir(parents=True, exist_ok=True)
    picture.save(PREVIEWS / f"dispenser-ticket-{paper_mm}mm.png")
    assert picture.width == width
    left, right = ink_columns(picture)
    assert left > 0 and right < width, "ink touches the paper's edge: something is clipped"
    assert decode_qr(picture) == "https://hcm-q1.example.gov.vn/ticket/5f0c2d7e9a8b4c3d?n=UB015"


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_job_has_a_raster_image_within_the_paper_and_cuts_at_the_end(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    image = TicketRenderer(LAYOUT, width_dots=width).render(a_ticket(), REGULAR_BUTTON)
    job = build_job(image, profile="default", width_dots=width)
    view = read_job(job)
    assert job.startswith(b"\x1b@")
    assert view.images and all(im.width <= width for im in view.images)
    assert view.cut and view.ends_with_cut and job.endswith(b"\x1dV\x00")
    assert ImageChops.difference(view.picture().convert("L"), image.convert("L")).getbbox() is None


def test_job_bytes_are_exactly_what_python_escpos_image_would_send() -> None:
    image = TicketRenderer(LAYOUT, width_dots=576).render(a_ticket(), PRIORITY_BUTTON)
    assert image.height > 960  # more than one raster band
    reference = Dummy()
    reference.profile = _profile("TM-T20II", 576)
    reference.hw("INIT")
    reference.image(image)
    reference.cut()
    assert build_job(image, profile="TM-T20II", width_dots=576) == reference.output


def escpos_job(images: list[Image.Image], *, profile: str, width_dots: int) -> bytes:
    """What python-escpos itself sends for a reset, ``images`` one after the other, and a cut."""
    reference = Dummy()
    reference.profile = _profile(profile, width_dots)
    reference.hw("INIT")
    for image in images:
        reference.image(image)
    reference.cut()
    return bytes(reference.output)


def a_day_of_tickets() -> list[tuple[TicketInfo, ButtonSpec]]:
    """Tickets of both buttons, priority or not, that draw different numbers, waits, QR codes and times."""
    moment = datetime(2026, 11, 27, 7, 30, tzinfo=HALL_TIME)
    return [(TicketInfo(id=f"{n:016x}", number=number, service="B", priority=n % 3 == 0,
                        category="elderly" if n % 3 == 0 else None, issued_at=moment + timedelta(minutes=7 * n),
                        ahead=ahead, estimated_wait_s=ahead * 227), button)
            for n, (number, ahead, button) in enumerate([("A001", 0, REGULAR_BUTTON), ("UB015", 12, PRIORITY_BUTTON),
                                                         ("A1234", 1, REGULAR_BUTTON), ("B7", 140, PRIORITY_BUTTON)])]


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_cached_header_is_the_fresh_rendering_encoded_as_python_escpos_would(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    jobs = TicketJobs(TicketRenderer(LAYOUT, width_dots=width), profile="TM-T20II")
    jobs.prepare(PRIORITY_BUTTON)
    for ticket, button in a_day_of_tickets():
        jobs.job(ticket, button)
    header = TicketRenderer(LAYOUT, width_dots=width).header(PRIORITY_BUTTON)
    reference = escpos_job([header], profile="TM-T20II", width_dots=width)
    assert jobs.head(PRIORITY_BUTTON) == reference[:-len(jobs.frame.end)]


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_each_ticket_job_prints_the_fresh_rendering_of_the_whole_ticket(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    jobs = TicketJobs(TicketRenderer(LAYOUT, width_dots=width), profile="TM-T20II")
    for ticket, button in a_day_of_tickets():
        fresh = TicketRenderer(LAYOUT, width_dots=width)
        job = b"".join(jobs.pieces(ticket, button))
        assert ImageChops.difference(read_job(job).picture().convert("L"),
                                     fresh.render(ticket, button).convert("L")).getbbox() is None
        parts = [fresh.header(button), fresh.body(ticket), fresh.footer()]
        assert job == escpos_job(parts, profile="TM-T20II", width_dots=width)


def test_the_head_is_the_same_for_every_ticket_of_a_button_and_differs_between_buttons() -> None:
    jobs = TicketJobs(TicketRenderer(LAYOUT, width_dots=576), profile="default")
    (first, _), (second, _) = a_day_of_tickets()[:2]
    head = next(jobs.pieces(first, REGULAR_BUTTON))
    assert next(jobs.pieces(second, REGULAR_BUTTON)) == head
    assert jobs.head(PRIORITY_BUTTON) != head
    assert jobs.job(first, REGULAR_BUTTON) != jobs.job(second, REGULAR_BUTTON)


def test_a_ticket_that_cannot_be_drawn_after_its_head_went_out_is_cut_off(tmp_path: Path) -> None:
    bold = tmp_path / "bold.ttf"
    shutil.copyfile(DEFAULT_BOLD_FONT, bold)
    jobs = TicketJobs(TicketRenderer(replace(LAYOUT, font_bold=bold), width_dots=576), profile="TM-T20II")
    jobs.prepare(REGULAR_BUTTON)
    bold.unlink()  # e.g. a package upgrade removed the font: a number needing a size not loaded yet fails
    pieces = jobs.pieces(a_ticket("WWWWWWWWWW"), REGULAR_BUTTON)  # drawn at 44 px, a size not used before
    assert next(pieces) == jobs.head(REGULAR_BUTTON)
    assert next(pieces) == jobs.frame.end
    with pytest.raises(OSError):
        next(pieces)
    assert read_job(jobs.head(REGULAR_BUTTON) + jobs.frame.end).ends_with_cut


def test_a_printer_without_cutter_gets_no_cut_command() -> None:
    image = TicketRenderer(LAYOUT, width_dots=384).render(a_ticket(), REGULAR_BUTTON)
    view = read_job(build_job(image, profile="POS-5890", width_dots=384))
    assert view.images and not view.cut


def test_image_wider_than_the_paper_is_refused() -> None:
    with pytest.raises(ValueError, match="wider than the paper"):
        build_job(Image.new("1", (600, 10), 1), profile="default", width_dots=576)


def test_file_printer_receives_the_job_bytes_unchanged(tmp_path: Path) -> None:
    job = build_job(TicketRenderer(LAYOUT, width_dots=384).render(a_ticket(), REGULAR_BUTTON),
                    profile="default", width_dots=384)
    device = tmp_path / "lp0"
    printer = File(devfile=str(device))
    printer._raw(job)
    printer.close()
    assert device.read_bytes() == job


def test_the_number_is_the_largest_thing_on_the_ticket() -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=384)
    number = renderer._number("UB015")
    header = renderer._lines(["Đất đai - Xây dựng"], bold=True, size=renderer.size_service)
    left, right = ink_columns(number)
    assert number.height >= 2 * header.height
    assert right - left > 0.8 * 384  # nearly the paper's width


def test_decomposed_vietnamese_prints_like_composed() -> None:
    composed = "Đất đai - Xây dựng"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    renderer = TicketRenderer(LAYOUT, width_dots=576)
    nfc_image = renderer._lines([composed], bold=True, size=40)
    nfd_image = renderer._lines([decomposed], bold=True, size=40)
    assert ImageChops.difference(nfc_image.convert("L"), nfd_image.convert("L")).getbbox() is None


def test_grey_from_anti_aliasing_turns_black_below_half_and_white_from_half() -> None:
    grey = Image.new("L", (256, 1))
    grey.putdata(range(256))
    assert list(_threshold(grey).tobytes()) == [0] * 16 + [255] * 16  # packed: 8 dots a byte


def test_stacked_marks_above_capitals_are_not_cut_off() -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=576)
    line = renderer._lines(["ỆỘẪ"], bold=True, size=40)
    box = ImageChops.invert(line.convert("L")).getbbox()
    assert box is not None and box[1] > 0  # white space above the highest mark


def test_long_text_wraps_inside_the_paper() -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=384)
    block = renderer._lines(["Trung tâm Phục vụ hành chính công Quận 1, Thành phố Hồ Chí Minh"], bold=True, size=24)
    one_line = renderer._lines(["Quận 1"], bold=True, size=24)
    assert block.height >= 2 * one_line.height
    left, right = ink_columns(block)
    assert left >= renderer.margin and right <= 384 - renderer.margin


def test_english_lines_can_be_left_out() -> None:
    both = TicketRenderer(LAYOUT, width_dots=576).render(a_ticket(), PRIORITY_BUTTON)
    vi_only = TicketRenderer(TicketLayout(hall_name=LAYOUT.hall_name, hall_id="h", dispenser_id="d1", english=False),
                             width_dots=576).render(a_ticket(), PRIORITY_BUTTON)
    assert vi_only.height < both.height - 100


def test_priority_tickets_carry_a_mark_regular_ones_do_not() -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=576)
    priority = renderer.render(a_ticket(priority=True), REGULAR_BUTTON)
    regular = renderer.render(a_ticket("A015", priority=False), REGULAR_BUTTON)
    assert priority.height > regular.height + 40


@pytest.mark.parametrize(("seconds", "vi", "en"), [
    (30, "dưới 1 phút", "under 1 min"), (61, "khoảng 2 phút", "about 2 min"),
    (2730, "khoảng 46 phút", "about 46 min"), (4800, "khoảng 1 giờ 20 phút", "about 1 h 20 min"),
])
def test_wait_is_said_in_minutes(seconds: int, vi: str, en: str) -> None:
    assert format_wait(seconds, english=False) == vi
    assert format_wait(seconds, english=True) == en


def test_a_too_narrow_paper_is_refused() -> None:
    with pytest.raises(ValueError, match="too narrow"):
        TicketRenderer(LAYOUT, width_dots=100)


# --- line breaking ------------------------------------------------------------------------------------------------

# Texts a ticket carries: service names short and long, with "(ưu tiên)", hall names, footers, the test ticket.
TICKET_TEXTS = [
    "IN THỬ — Kiểm tra máy in", "TEST PRINT — printer check", "Kiểm tra máy in",
    "Đất đai - Xây dựng (ưu tiên)", "Hộ tịch (ưu tiên)", "Land and construction (priority)",
    "Civil status registration (priority)", "Trung tâm Phục vụ hành chính công Quận 1",
    "Trung tâm Phục vụ hành chính công Quận 1, Thành phố Hồ Chí Minh",
    "Vui lòng chờ gọi số. Xin cảm ơn! / Please wait for your number. Thank you!",
    "Cấp đổi giấy phép lái xe, đăng ký phương tiện giao thông (ưu tiên)",
    "Bảo hiểm xã hội và bảo hiểm y tế (ưu tiên)", "Tư pháp - Hộ tịch - Chứng thực bản sao từ bản chính",
    "ƯU TIÊN · Phụ nữ mang thai", "Chờ khoảng 1 giờ 20 phút", "Wait about 1 h 20 min",
]
FONTS = [(DEFAULT_BOLD_FONT, 30), (DEFAULT_BOLD_FONT, 42), (DEFAULT_FONT, 20), (DEFAULT_FONT, 24)]
WIDTHS = range(140, 577, 16)  # the paper widths and everything narrower a label may be wrapped to


def ink_width(font: ImageFont.FreeTypeFont, text: str) -> float:
    left, _, right, _ = font.getbbox(text)
    return right - left


def words_in(text: str) -> int:
    """Words, not marks: "Đất đai -" is two."""
    return sum(1 for word in text.split() if any(ch.isalnum() for ch in word))


def acceptable_breaks(words: list[str]) -> list[int]:
    """Where a reader accepts a line break (before ``words[k]``): not inside a short parenthesised phrase such
    as "(ưu tiên)", not before a lone mark ("—", "-")."""
    refused = {k for k, word in enumerate(words) if not any(ch.isalnum() for ch in word)}
    for k, word in enumerate(words):
        close = next((m for m in range(k, min(k + 4, len(words))) if words[m].endswith(")")), None)
        if word.startswith("(") and close is not None:
            refused |= set(range(k + 1, close + 1))
    return [k for k in range(1, len(words)) if k not in refused]


def a_last_line_of_several_words_exists(text: str, font: ImageFont.FreeTypeFont, width: int, *, lines: int) -> bool:
    """Whether ``text`` can be set in ``lines`` lines that fit, broken only where a reader accepts, with more than
    one word on the last line."""
    words = text.split()
    cuts = [0, *acceptable_breaks(words), len(words)]
    widths: dict[tuple[int, int], float] = {}

    def fits(a: int, b: int) -> bool:
        if (a, b) not in widths:
            widths[a, b] = ink_width(font, " ".join(words[a:b]))
        return widths[a, b] <= width

    settings: dict[int, set[int]] = {0: {0}}  # cut → the numbers of lines words[:cut] can be set in
    for b in cuts[1:]:
        settings[b] = {count + 1 for a in cuts if a < b and fits(a, b) for count in settings[a]}
    return any(lines - 1 in settings[m] and fits(m, len(words)) and words_in(" ".join(words[m:])) > 1
               for m in cuts[:-1])


def test_wrap_leaves_no_lone_word_on_the_last_line_when_another_break_would_not() -> None:
    # Greedy wrapping set the test ticket's label on 80 mm paper as "IN THỬ — Kiểm tra máy" / "in".
    assert a_last_line_of_several_words_exists("IN THỬ — Kiểm tra máy in", ImageFont.truetype(
        str(DEFAULT_BOLD_FONT), 42), 560, lines=2)
    for path, size in FONTS:
        font = ImageFont.truetype(str(path), size)
        for text in TICKET_TEXTS:
            for width in WIDTHS:
                lines = wrap(text, font, width)
                if words_in(lines[-1]) == 1 and words_in(text) > 1:
                    assert not a_last_line_of_several_words_exists(text, font, width, lines=len(lines)), (
                        f"{lines} at {size} px in {width} dots: the last word could have had company")


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_the_test_ticket_label_keeps_its_last_word_in_company(paper_mm: int) -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=PAPER_DOTS[paper_mm])
    font = ImageFont.truetype(str(DEFAULT_BOLD_FONT), renderer.size_service)
    lines = wrap("IN THỬ — Kiểm tra máy in", font, renderer.inner)
    assert lines == ["IN THỬ —", "Kiểm tra máy in"]  # the pause ends the line; "in" is not left alone


def test_a_parenthesised_short_phrase_is_never_split() -> None:
    for path, size in FONTS:
        font = ImageFont.truetype(str(path), size)
        for text in [t for t in TICKET_TEXTS if "(ưu tiên)" in t]:
            for width in WIDTHS:
                if ink_width(font, "(ưu tiên)") <= width:
                    lines = wrap(text, font, width)
                    assert any("(ưu tiên)" in line for line in lines), f"{lines} in {width} dots"


def test_wrap_keeps_the_text_in_order_and_breaks_only_a_word_wider_than_the_line() -> None:
    for path, size in FONTS:
        font = ImageFont.truetype(str(path), size)
        for text in TICKET_TEXTS:
            for width in WIDTHS:
                lines = wrap(text, font, width)
                assert "".join(lines).replace(" ", "") == text.replace(" ", "")
                if all(ink_width(font, word) <= width for word in text.split()):
                    assert " ".join(lines).split() == text.split()


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_every_line_of_a_ticket_fits_the_paper_by_its_ink(paper_mm: int) -> None:
    renderer = TicketRenderer(LAYOUT, width_dots=PAPER_DOTS[paper_mm])
    sizes = [renderer.size_hall, renderer.size_service, renderer.size_text, renderer.size_small, renderer.size_mark]
    for path in (DEFAULT_FONT, DEFAULT_BOLD_FONT):
        for size in sizes:
            font = ImageFont.truetype(str(path), size)
            for text in [*TICKET_TEXTS, LAYOUT.hall_name, LAYOUT.footer, "Thànhphốcủanhữngngườikhôngngủ"]:
                for line in wrap(text, font, renderer.inner):
                    assert ink_width(font, line) <= renderer.inner, f"{line!r} at {size} px"


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_the_priority_mark_stays_inside_its_black_box(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    renderer = TicketRenderer(LAYOUT, width_dots=width)
    for category in ("elderly", "disability", "pregnant", "child"):
        mark = renderer._priority_mark(category).convert("L")
        box = ImageChops.invert(mark).getbbox()
        assert box == (renderer.margin, 0, width - renderer.margin, mark.height)
        inside = mark.crop((renderer.margin, 0, width - renderer.margin, mark.height))
        for x in (0, 1, 2, 3, inside.width - 4, inside.width - 3, inside.width - 2, inside.width - 1):
            column = inside.crop((x, 0, x + 1, inside.height))
            assert column.getextrema() == (0, 0), f"white text touches the box's side at column {x}"


# --- the QR code --------------------------------------------------------------------------------------------------

# A controller's ticket ids are 32 hex digits (uuid4): the usual size of code on paper.
REAL_QR = "https://dichvucong.example.vn/ve/{ticket_id}"
REAL_TICKET_ID = "5f0c2d7e9a8b4c3d5f0c2d7e9a8b4c3d"
needs_zbarimg = pytest.mark.skipif(shutil.which("zbarimg") is None,
                                   reason="zbarimg (Debian zbar-tools) is not installed: the QR code cannot be read back")


def qr_geometry(block: Image.Image) -> tuple[tuple[int, int, int, int], int]:
    """The code's ink box in ``block``, and its module in dots (the top-left finder is 7 modules of black)."""
    grey = block.convert("L")
    box = ImageChops.invert(grey).getbbox()
    assert box is not None
    top_row = [grey.getpixel((x, box[1])) for x in range(box[0], box[2])]
    run = next((i for i, value in enumerate(top_row) if value), len(top_row))
    assert run % 7 == 0
    return box, run // 7


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_qr_code_is_at_least_20_mm_across_with_modules_of_several_dots(paper_mm: int) -> None:
    renderer = TicketRenderer(replace(LAYOUT, qr=REAL_QR), width_dots=PAPER_DOTS[paper_mm])
    block = renderer._qr(REAL_QR.format(ticket_id=REAL_TICKET_ID))
    (left, _, right, _), module = qr_geometry(block)
    assert right - left >= 160  # 20 mm at 203 dpi, the resolution of 58 and 80 mm thermal printers
    assert module >= 4


@pytest.mark.parametrize("paper_mm", [58, 80])
def test_qr_code_keeps_a_quiet_zone_of_four_modules_on_every_side(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    block = TicketRenderer(replace(LAYOUT, qr=REAL_QR), width_dots=width)._qr(REAL_QR.format(ticket_id=REAL_TICKET_ID))
    (left, top, right, bottom), module = qr_geometry(block)
    # The blocks of a ticket are stacked edge to edge: the white inside this one is all the quiet zone there is.
    assert min(left, top, width - right, block.height - bottom) >= 4 * module


@needs_zbarimg
@pytest.mark.parametrize("paper_mm", [58, 80])
def test_qr_code_on_the_printed_ticket_decodes_with_zbarimg(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    ticket = replace(a_ticket(), id=REAL_TICKET_ID)
    image = TicketRenderer(replace(LAYOUT, qr=REAL_QR), width_dots=width).render(ticket, PRIORITY_BUTTON)
    picture = read_job(build_job(image, profile="default", width_dots=width)).picture()
    assert decode_qr(picture) == REAL_QR.format(ticket_id=REAL_TICKET_ID)


@needs_zbarimg
def test_a_long_qr_content_still_fits_58_mm_paper_with_its_quiet_zone_and_decodes() -> None:
    content = "https://dichvucong.example.vn/ve/" + "x" * 300  # a long configured template, filled in
    block = TicketRenderer(replace(LAYOUT, qr=content), width_dots=384)._qr(content)
    (left, _, right, _), module = qr_geometry(block)
    assert block.width == 384 and min(left, 384 - right) >= 4 * module
    assert module >= 3
    assert decode_qr(block) == content


# --- the status page's link -----------------------------------------------------------------------------------

FOLLOW_QR = "https://hcm-q1.example.gov.vn/t/{token}"


@needs_zbarimg
@pytest.mark.parametrize("paper_mm", [58, 80])
def test_a_status_page_link_carries_the_token_and_says_so_under_the_code(paper_mm: int) -> None:
    width = PAPER_DOTS[paper_mm]
    ticket = replace(a_ticket(), token="5c0e9d41a7b23f68e1d4c2b9")
    renderer = TicketRenderer(replace(LAYOUT, qr=FOLLOW_QR), width_dots=width)
    assert renderer.follows
    image = renderer.render(ticket, PRIORITY_BUTTON)
    picture = read_job(build_job(image, profile="default", width_dots=width)).picture()
    picture.save(PREVIEWS / f"ticket-follow-{paper_mm}mm.png")
    assert decode_qr(picture) == "https://hcm-q1.example.gov.vn/t/5c0e9d41a7b23f68e1d4c2b9"
    # The caption makes the ticket taller than the same ticket with a plain link.
    plain = TicketRenderer(replace(LAYOUT, qr="https://hcm-q1.example.gov.vn/t/5c0e9d41a7b23f68e1d4c2b9"),
                           width_dots=width).render(ticket, PRIORITY_BUTTON)
    assert image.height > plain.height


def test_a_ticket_without_a_token_prints_no_dead_status_link() -> None:
    renderer = TicketRenderer(replace(LAYOUT, qr=FOLLOW_QR), width_dots=PAPER_DOTS[80])
    assert renderer.qr_content(a_ticket()) is None  # an older controller's ticket: no token
    assert renderer.qr_content(replace(a_ticket(), token="ab12")) == "https://hcm-q1.example.gov.vn/t/ab12"
    no_code = TicketRenderer(replace(LAYOUT, qr=""), width_dots=PAPER_DOTS[80])
    assert no_code.qr_content(replace(a_ticket(), token="ab12")) is None
    # Drawn without a code, the ticket is shorter than with one.
    with_code = renderer.render(replace(a_ticket(), token="ab12"), PRIORITY_BUTTON)
    assert renderer.render(a_ticket(), PRIORITY_BUTTON).height < with_code.height
