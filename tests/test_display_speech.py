"""Announcement words: numbers read out by the application, because espeak-ng's Vietnamese misreads digits."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from display.speech import announcement_texts, counter_en, counter_vi, number_vi, ticket_en, ticket_vi


@pytest.mark.parametrize(("number", "words"), [
    ("A015", "a không trăm mười lăm"),
    ("A001", "a không trăm linh một"),
    ("A010", "a không trăm mười"),
    ("A021", "a không trăm hai mươi mốt"),
    ("A025", "a không trăm hai mươi lăm"),
    ("A105", "a một trăm linh năm"),
    ("A111", "a một trăm mười một"),
    ("A115", "a một trăm mười lăm"),
    ("A200", "a hai trăm"),
    ("A999", "a chín trăm chín mươi chín"),
    ("UB001", "u bê không trăm linh một"),
    ("C1005", "xê một nghìn không trăm linh năm"),
    ("A000", "a không"),
])
def test_ticket_numbers_in_vietnamese_words(number: str, words: str) -> None:
    assert ticket_vi(number) == words


def test_southern_voice_says_le_for_a_lone_units_digit() -> None:
    assert number_vi("105", odd_word="lẻ") == "một trăm lẻ năm"


@pytest.mark.parametrize(("counter", "words"), [("5", "năm"), ("05", "năm"), ("12", "mười hai"), ("15", "mười lăm"),
                                                ("21", "hai mươi mốt"), ("B2", "bê hai")])
def test_counters_in_vietnamese_words(counter: str, words: str) -> None:
    assert counter_vi(counter) == words


def test_english_spells_letters_and_digits() -> None:
    assert ticket_en("A015") == "A, zero one five"
    assert ticket_en("UB001") == "U B, zero zero one"
    assert counter_en("05") == "5"


def test_call_is_announced_in_vietnamese_then_english() -> None:
    vi, en = announcement_texts(number="A015", counter="5", languages=("vi", "en"))
    assert (vi.text, vi.spoken) == ("Mời số A015 đến quầy số 5", "Mời số a không trăm mười lăm đến quầy số năm")
    assert (en.text, en.spoken) == ("Number A015, please go to counter 5.",
                                    "Number A, zero one five, please go to counter 5.")


def test_templates_and_language_order_come_from_config() -> None:
    [only] = announcement_texts(number="B002", counter="3", languages=("en",),
                                templates={"en": "Ticket {number} to desk {counter}"})
    assert only.spoken == "Ticket B, zero zero two to desk 3"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_misreads_digits_that_our_words_get_right() -> None:
    def phonemes(text: str) -> str:
        return subprocess.run(["espeak-ng", "-q", "-x", "-v", "vi", text], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    lam = "l'a7m"  # "lăm", the 5 after a ten
    assert lam not in phonemes("15")  # espeak alone says "mười năm"
    assert lam in phonemes(ticket_vi("A015"))
    assert "tS'a1m" in phonemes(ticket_vi("A015"))  # "trăm": the hundreds espeak drops from "015"
