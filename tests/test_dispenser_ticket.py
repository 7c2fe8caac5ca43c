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
from PIL import Image, ImageChops

from dispenser.core import ButtonSpec
from dispenser.printer import TicketJobs, _profile, build_job, read_job
from dispenser.ticket import (
    DEFAULT_BOLD_FONT,
    PAPER_DOTS,
    TicketLayout,
    TicketRenderer,
    _threshold,
    format_wait,
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
