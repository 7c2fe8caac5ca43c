"""The one parser of a citizen's card (hallq/cards.py): what it reads, and what it refuses without naming data."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from hallq.cards import CardError, CitizenCard, HallCard, age_on, hall_prefix_problem, kind_of, parse

TODAY = date(2026, 11, 27)
NAME = "Nguyễn Thị Ánh Tuyết"
ADDRESS = "12 Lê Lợi, Phường Bến Thành, Quận 1, TP. Hồ Chí Minh"


def cccd(*, id_number: str = "079303012345", old: str = "", name: str = NAME, birth: str = "12052003",
         sex: str = "Nữ", address: str = ADDRESS, issued: str = "01072021", extra: str = "") -> str:
    return "|".join([id_number, old, name, birth, sex, address, issued]) + extra


def refusal(text: str, **options: object) -> str:
    with pytest.raises(CardError) as caught:
        parse(text, today=TODAY, **options)  # type: ignore[arg-type]
    return str(caught.value)


def test_a_valid_cccd_is_read_field_by_field() -> None:
    card = parse(cccd(), today=TODAY)
    assert isinstance(card, CitizenCard)
    assert (card.id_number, card.old_id_number, card.name, card.birth_date, card.sex, card.address,
            card.issued_on) == ("079303012345", None, NAME, date(2003, 5, 12), "Nữ", ADDRESS, date(2021, 7, 1))
    assert card.age_on(TODAY) == 23


def test_an_old_nine_digit_id_number_is_kept() -> None:
    card = parse(cccd(id_number="001050012345", old="123456789", name="Nguyễn Văn An", birth="01011950",
                      sex="Nam"), today=TODAY)
    assert isinstance(card, CitizenCard) and card.old_id_number == "123456789" and card.age_on(TODAY) == 76


def test_fields_after_the_seventh_are_ignored() -> None:
    card = parse(cccd(extra="|Nguyễn Văn Bình|Trần Thị Cúc"), today=TODAY)
    assert isinstance(card, CitizenCard) and card.issued_on == date(2021, 7, 1)


def test_a_trailing_line_break_and_blanks_are_ignored() -> None:
    assert isinstance(parse(f"  {cccd()}\r\n", today=TODAY), CitizenCard)


def test_decomposed_vietnamese_is_read_in_the_composed_form() -> None:
    decomposed = unicodedata.normalize("NFD", cccd())
    assert decomposed != cccd()
    card = parse(decomposed, today=TODAY)
    assert isinstance(card, CitizenCard) and card.name == NAME and unicodedata.is_normalized("NFC", card.address)


@pytest.mark.parametrize(("text", "reason"), [
    ("https://dichvucong.gov.vn/p/home/dvc-trang-chu.html", "this hall issues no cards"),
    ("xin chào", "this hall issues no cards"),
    ("", "empty scan"),
    ("079303012345|Nguyễn|12052003", "7 fields"),
    (cccd(id_number="07930301234"), "12 digits"),
    (cccd(id_number="0793030123456"), "12 digits"),
    (cccd(id_number="07930301234X"), "12 digits"),
    (cccd(old="12345"), "old ID number"),
    (cccd(id_number="099303012345"), "province"),
    (cccd(birth="31022003"), "date of birth is not a real date"),
    (cccd(birth="2003-5-1"), "8 digits"),
    (cccd(issued="32012021"), "issue date is not a real date"),
    (cccd(id_number="079327012345", birth="12052027", issued="01072027"), "future"),
    (cccd(id_number="079103012345"), "century digit"),
    (cccd(id_number="079603012345"), "century digit"),
    (cccd(id_number="079304012345"), "year digits"),
    (cccd(sex="Nam"), "sex digit"),
    (cccd(id_number="079203012345"), "sex digit"),
    (cccd(sex="X"), "Nam or Nữ"),
    (cccd(issued="01072028"), "issue date"),
    (cccd(issued="01072001"), "issue date"),
    (cccd(name="Nguyễn Văn 2"), "without digits"),
    (cccd(address=""), "address"),
    (cccd(name="Nguyễn\tVăn An"), "control characters"),
    (cccd() + "\x00", "control characters"),
    ("x" * 600, "longer than 512"),
])
def test_a_bad_scan_is_refused_with_a_reason_that_holds_no_data(text: str, reason: str) -> None:
    message = refusal(text)
    assert reason in message
    for value in ("079303012345", NAME, "12052003", "Lê Lợi", "dichvucong"):
        assert value not in message


def test_a_birth_more_than_130_years_ago_is_refused() -> None:
    with pytest.raises(CardError, match="more than 130 years"):
        parse(cccd(id_number="079101012345", birth="01011901"), today=date(2035, 1, 2))


def test_a_hall_card_is_read_with_the_halls_prefix_in_capitals() -> None:
    assert parse("tthcc-7k2m9q", today=TODAY, hall_prefix="TTHCC-") == HallCard("TTHCC-7K2M9Q")


@pytest.mark.parametrize(("text", "prefix", "reason"), [
    ("TTHCC-7K2M9Q", None, "issues no cards of its own"),
    ("OTHER-7K2M9Q", "TTHCC-", "neither a CCCD nor a card of this hall"),
    ("TTHCC-7K2", "TTHCC-", "4-32 of A-Z 0-9"),
    ("TTHCC-7K2M 9Q", "TTHCC-", "4-32 of A-Z 0-9"),
    ("TTHCC-ĐK2M9Q", "TTHCC-", "4-32 of A-Z 0-9"),
])
def test_a_hall_code_that_is_not_this_halls_is_refused(text: str, prefix: str | None, reason: str) -> None:
    assert reason in refusal(text, hall_prefix=prefix)


@pytest.mark.parametrize(("prefix", "ok"), [("TTHCC-", True), ("Q1_", True), ("tthcc-", False), ("-X", False),
                                            ("", False), ("A" * 17, False), ("HCC ", False)])
def test_a_halls_prefix_is_checked(prefix: str, ok: bool) -> None:
    assert (hall_prefix_problem(prefix) is None) is ok


def test_a_card_never_shows_its_data_in_its_repr() -> None:
    card = parse(cccd(), today=TODAY)
    assert repr(card) == "CitizenCard(<personal data>)"


def test_the_kind_a_code_claims_is_told_by_its_separators() -> None:
    assert (kind_of(cccd()), kind_of("TTHCC-7K2M9Q")) == ("cccd", "hall")


def test_a_29_february_birthday_counts_on_1_march() -> None:
    birth = date(2004, 2, 29)
    assert (age_on(birth, date(2026, 2, 28)), age_on(birth, date(2026, 3, 1))) == (21, 22)
