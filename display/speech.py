"""What the hall hears: the words of an announcement, with ticket numbers and counters read out by us.

espeak-ng's Vietnamese voice misreads numbers written as digits: it says "mười năm" for 15 (correct: "mười
lăm"), "hai mươi một" for 21 ("hai mươi mốt") and drops the hundreds of a padded ticket number ("A015" →
"a không mười năm"). So the application writes numbers out in words before the voice sees them:

    A015  → "a không trăm mười lăm"          UB001 → "u bê không trăm linh một"
    A105  → "a một trăm linh năm"            A021  → "a không trăm hai mươi mốt"

The padded hundreds ("không trăm") follow what is printed on the ticket, so the citizen hears the digits
they hold. Letters are read by their Vietnamese names (B "bê", C "xê", ...). English reads the letters as
letters and the digits one by one ("Number A, zero one five"), the way English announcements spell codes;
the commas keep espeak from reading a lone "A" as the article.

Pure functions: no I/O. ``announcement_texts()`` gives the words for a call in each configured language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["vi", "en"]

UNITS_VI: Final = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
LETTERS_VI: Final = {
    "A": "a", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e", "F": "ép", "G": "giê", "H": "hát", "I": "i",
    "J": "gi", "K": "ca", "L": "e lờ", "M": "em mờ", "N": "en nờ", "O": "o", "P": "pê", "Q": "quy", "R": "e rờ",
    "S": "ét xì", "T": "tê", "U": "u", "V": "vê", "W": "vê kép", "X": "ích xì", "Y": "i dài", "Z": "dét",
}
DIGITS_EN: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TICKET = re.compile(r"^([A-Za-zĐđ]*)(\d*)$")
MAX_SPOKEN_DIGITS: Final = 6

DEFAULT_TEMPLATES: Final[dict[Language, str]] = {
    "vi": "Mời số {number} đến quầy số {counter}",
    "en": "Number {number}, please go to counter {counter}.",
}
# The same call when it follows another under one chime: "Mời số A015 đến quầy số 5, số B003 đến quầy số 2".
DEFAULT_MORE_TEMPLATES: Final[dict[Language, str]] = {
    "vi": "số {number} đến quầy số {counter}",
    "en": "number {number}, counter {counter}.",
}


def _tens_and_units_vi(value: int, *, after_hundreds: bool, odd_word: str) -> list[str]:
    """0–99 in words; ``after_hundreds`` adds "linh" before a lone units digit (105 → một trăm linh năm)."""
    tens, units = divmod(value, 10)
    if value == 0:
        return []
    if tens == 0:
        return [odd_word, UNITS_VI[units]] if after_hundreds else [UNITS_VI[units]]
    words = ["mười"] if tens == 1 else [UNITS_VI[tens], "mươi"]
    if units == 1 and tens >= 2:
        words.append("mốt")
    elif units == 5:
        words.append("lăm")
    elif units:
        words.append(UNITS_VI[units])
    return words


def _below_thousand_vi(value: int, *, with_hundreds: bool, odd_word: str) -> list[str]:
    """0–999; ``with_hundreds`` reads a zero hundreds digit too ("không trăm mười lăm")."""
    hundreds, rest = divmod(value, 100)
    if hundreds == 0 and not with_hundreds:
        return _tens_and_units_vi(rest, after_hundreds=False, odd_word=odd_word)
    words = [UNITS_VI[hundreds], "trăm"]
    return words + _tens_and_units_vi(rest, after_hundreds=True, odd_word=odd_word)


def number_vi(digits: str, *, odd_word: str = "linh") -> str:
    """Digits as a Vietnamese reads them: "015" → "không trăm mười lăm", "5" → "năm", "1005" → "một nghìn
    không trăm linh năm". Three or more digits read the hundreds even when zero, as printed. Longer than six
    digits: one digit at a time. ``odd_word`` is "linh" (northern) or "lẻ" (southern)."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"not a string of digits: {digits!r}")
    value = int(digits)
    if len(digits) > MAX_SPOKEN_DIGITS:
        return " ".join(UNITS_VI[int(d)] for d in digits)
    if value == 0:
        return "không"
    thousands, rest = divmod(value, 1000)
    if thousands:
        words = [*_below_thousand_vi(thousands, with_hundreds=False, odd_word=odd_word), "nghìn"]
        if rest:
            words += _below_thousand_vi(rest, with_hundreds=True, odd_word=odd_word)
        return " ".join(words)
    return " ".join(_below_thousand_vi(rest, with_hundreds=len(digits) >= 3, odd_word=odd_word))


def _split(code: str) -> tuple[str, str] | None:
    match = _TICKET.match(code.strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    return match.group(1).upper(), match.group(2)


def ticket_vi(number: str, *, odd_word: str = "linh") -> str:
    """A ticket number for the Vietnamese voice: "A015" → "a không trăm mười lăm"."""
    parts = _split(number)
    if parts is None:
        return " ".join(LETTERS_VI.get(ch.upper(), ch) for ch in number if not ch.isspace())
    letters, digits = parts
    words = [LETTERS_VI.get(ch, ch) for ch in letters]
    if digits:
        words.append(number_vi(digits, odd_word=odd_word))
    return " ".join(words)


def counter_vi(counter: str, *, odd_word: str = "linh") -> str:
    """A counter id for the Vietnamese voice: "5" → "năm", "12" → "mười hai", "B2" → "bê hai"."""
    parts = _split(counter)
    if parts is None:
        return counter
    letters, digits = parts
    words = [LETTERS_VI.get(ch, ch) for ch in letters]
    if digits:
        # A counter is a count, not a printed code: "05" is still "năm".
        words.append(number_vi(str(int(digits)), odd_word=odd_word))
    return " ".join(words)


def ticket_en(number: str) -> str:
    """A ticket number for the English voice: "A015" → "A, zero one five"; "UB001" → "U B, zero zero one"."""
    parts = _split(number)
    if parts is None:
        return number
    letters, digits = parts
    spoken = " ".join(letters)
    said_digits = " ".join(DIGITS_EN[int(d)] for d in digits)
    return f"{spoken}, {said_digits}" if spoken and said_digits else spoken or said_digits


def counter_en(counter: str) -> str:
    """A counter id for the English voice: digits stay digits (espeak reads English numbers right)."""
    parts = _split(counter)
    if parts is None:
        return counter
    letters, digits = parts
    return " ".join([*letters, str(int(digits))] if digits else letters)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One sentence in one language: ``text`` to show, ``spoken`` for the voice (numbers in words)."""

    language: Language
    text: str
    spoken: str


def announcement_texts(*, number: str, counter: str, languages: tuple[Language, ...],
                       templates: dict[Language, str] | None = None, odd_word: str = "linh") -> list[Utterance]:
    """The sentences announcing ``number`` to ``counter``, one per language, in the order given."""
    chosen = {**DEFAULT_TEMPLATES, **(templates or {})}
    result = []
    for language in languages:
        template = chosen[language]
        if language == "vi":
            spoken = template.format(number=ticket_vi(number, odd_word=odd_word),
                                     counter=counter_vi(counter, odd_word=odd_word))
        else:
            spoken = template.format(number=ticket_en(number), counter=counter_en(counter))
        result.append(Utterance(language=language, text=template.format(number=number, counter=counter),
                                spoken=spoken))
    return result
