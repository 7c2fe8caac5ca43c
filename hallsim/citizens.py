"""The simulated hall's citizens who carry a chip ID card (CCCD): a fixed, seeded crowd, so some come back.

Each code is what a CCCD's QR code holds (``hallq.cards``), made to agree with itself: the ID number's province,
sex and century digit and year of birth match the card's fields. About a third are 60 or older, so the hall's
age rule puts them in the priority lane. The people are invented.
"""

from __future__ import annotations

import random
from datetime import date

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ")
MIDDLE = {"Nam": ("Văn", "Hữu", "Đức", "Minh", "Quốc"), "Nữ": ("Thị", "Ngọc", "Thu", "Thanh", "Kim")}
GIVEN = {"Nam": ("An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Khoa", "Long", "Phúc", "Tuấn"),
         "Nữ": ("Anh", "Bích", "Dung", "Hà", "Hạnh", "Lan", "Mai", "Ngân", "Trang", "Tuyết")}
STREETS = ("Lê Lợi", "Nguyễn Huệ", "Pasteur", "Hai Bà Trưng", "Điện Biên Phủ", "Cách Mạng Tháng Tám", "Trần Hưng Đạo")
WARDS = ("Phường Bến Nghé", "Phường Bến Thành", "Phường Đa Kao", "Phường Cầu Ông Lãnh")


def crowd_cards(seed: int, count: int = 12, *, today: date) -> tuple[str, ...]:
    """``count`` CCCD codes of invented citizens of Ho Chi Minh City (province 079)."""
    rng = random.Random(seed)  # noqa: S311 - invented people, not secrets
    codes = []
    for index in range(count):
        sex = rng.choice(("Nam", "Nữ"))
        age = rng.randint(62, 88) if index % 3 == 0 else rng.randint(19, 58)
        born = date(today.year - age - 1, rng.randint(1, 12), rng.randint(1, 28))
        century = (born.year // 100 - 19) * 2 + (1 if sex == "Nữ" else 0)
        number = f"079{century}{born.year % 100:02d}{rng.randint(0, 999999):06d}"
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE[sex])} {rng.choice(GIVEN[sex])}"
        address = f"{rng.randint(1, 240)} {rng.choice(STREETS)}, {rng.choice(WARDS)}, Quận 1, TP Hồ Chí Minh"
        issued = date(rng.randint(2021, today.year - 1), rng.randint(1, 12), rng.randint(1, 28))
        old = f"{rng.randint(0, 999999999):09d}" if rng.random() < 0.5 else ""
        codes.append(f"{number}|{old}|{name}|{born:%d%m%Y}|{sex}|{address}|{issued:%d%m%Y}")
    return tuple(codes)
