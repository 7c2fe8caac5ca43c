"""The dispenser's configuration: a strict TOML file (every option is documented in ``config/dispenser.example.toml``).

Every key is checked at start; an unknown key or a bad value stops the dispenser with one message that
names the file, the key and the problem (exit status 78), never a traceback. Text meant for paper is
NFC-normalised here, once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image, UnidentifiedImageError

from dispenser.core import ButtonSpec, CardRules, Timing
from dispenser.hardware import PIN_FACTORIES, ButtonWiring, LedWiring
from dispenser.printer import profile_names, profile_width_dots
from dispenser.scanner import BAUDRATES
from dispenser.ticket import DEFAULT_BOLD_FONT, DEFAULT_FONT, PAPER_DOTS, QR_FIELDS, TicketLayout, nfc
from hallq.cards import hall_prefix_problem
from hallq.configfile import LOG_LEVELS, Table, load_toml, read_mqtt, refuse_duplicates
from hallq.errors import ConfigError
from hallq.mqtt import BrokerSettings
from hallq.wire import PRIORITY_CATEGORIES

PRINTER_TYPES = ("usb", "serial", "network", "file", "preview")
PrinterType = Literal["usb", "serial", "network", "file", "preview"]
BCM_PINS = range(28)  # GPIO0-GPIO27 on every 40-pin Raspberry Pi


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    """Which printer, how to reach it, and the paper. Only the chosen ``type``'s connection fields are set."""

    type: PrinterType
    paper_width_mm: int
    profile: str
    status_poll_s: float
    status_timeout_s: float
    preview_dir: Path
    usb_vendor_id: int = 0
    usb_product_id: int = 0
    usb_timeout_ms: int = 5000
    usb_in_ep: int | None = None
    usb_out_ep: int | None = None
    serial_device: str = ""
    serial_baudrate: int = 19200
    network_host: str = ""
    network_port: int = 9100
    timeout_s: float = 10.0
    file_device: str = ""

    @property
    def width_dots(self) -> int:
        return PAPER_DOTS[self.paper_width_mm]


@dataclass(frozen=True, slots=True)
class ScannerConfig:
    """The card scanner (``[scanner]``): its serial device, its speed, and how a card is treated."""

    device: str
    baudrate: int
    rules: CardRules


@dataclass(frozen=True, slots=True)
class DispenserConfig:
    id: str
    hall: str
    controller_id: str
    time_zone: str
    base_topic: str
    broker: BrokerSettings
    log_level: str
    timing: Timing
    buttons: tuple[ButtonSpec, ...]
    wiring: tuple[ButtonWiring, ...]
    leds: LedWiring
    pin_factory: str | None
    printer: PrinterConfig
    layout: TicketLayout
    source: Path
    scanner: ScannerConfig | None = None  # None: no card scanner, the kiosk works by its buttons alone

    def with_preview(self, directory: Path | None) -> DispenserConfig:
        """The same dispenser printing to the preview printer (``--simulate``), in ``directory`` if given."""
        printer = replace(self.printer, type="preview", preview_dir=directory or self.printer.preview_dir)
        return replace(self, printer=printer)

    @property
    def zone(self) -> ZoneInfo:
        """The hall's time zone: every time a person reads (the test ticket's included) is in it."""
        return ZoneInfo(self.time_zone)


def load(path: Path) -> DispenserConfig:
    """Read and check the dispenser's config file; raises ``ConfigError`` naming file, key and problem."""
    root = load_toml(path)
    section = root.table("dispenser", required=True)
    broker, base_topic = read_mqtt(root.table("mqtt"))
    dispenser_id = section.ident("id")
    timing = Timing(
        request_timeout_s=section.number("request_timeout_s", 1.0, minimum=0.1, maximum=30),
        request_attempts=section.integer("request_attempts", 3, minimum=1, maximum=10),
        min_interval_s=section.number("min_interval_s", 2.0, minimum=0, maximum=600),
    )
    hall = section.ident("hall")
    controller_id = section.ident("controller_id", "controller")
    time_zone = section.text("time_zone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise section.error("time_zone", f"unknown time zone {time_zone!r}") from None
    log_level = section.choice("log_level", LOG_LEVELS, "INFO")
    section.done()

    gpio = root.table("gpio")
    factory = gpio.text("pin_factory", "", allow_empty=True)
    if factory and factory not in PIN_FACTORIES:
        raise gpio.error("pin_factory", f"must be one of {', '.join(PIN_FACTORIES)} (or empty), got {factory!r}")
    leds = LedWiring(ready=_opt_pin(gpio, "ready_led"), busy=_opt_pin(gpio, "busy_led"),
                     fault=_opt_pin(gpio, "fault_led"), buzzer=_opt_pin(gpio, "buzzer"),
                     active_high=gpio.boolean("active_high", True))
    gpio.done()
    scanner = None
    if root.has("scanner"):
        scanner, card_led = _scanner(root.table("scanner"))
        leds = replace(leds, card=card_led)

    buttons, wiring, pin_keys = _buttons(root)
    _pins_distinct(root, wiring, pin_keys, leds)
    printer = _printer(root.table("printer"))
    layout = _ticket(root.table("ticket"), hall=hall, dispenser=dispenser_id)
    root.done()
    return DispenserConfig(id=dispenser_id, hall=hall, controller_id=controller_id, time_zone=time_zone,
                           base_topic=base_topic, broker=broker, log_level=log_level, timing=timing, buttons=buttons,
                           wiring=wiring, leds=leds, pin_factory=factory or None, printer=printer, layout=layout,
                           source=path, scanner=scanner)


def _scanner(t: Table) -> tuple[ScannerConfig, int | None]:
    """The scanner's settings and the pin of its "card read" LED (None: not fitted)."""
    device = t.text("device")
    baud = t.integer("baudrate", 9600)
    if baud not in BAUDRATES:
        raise t.error("baudrate", f"must be {', '.join(map(str, BAUDRATES[:-1]))} or {BAUDRATES[-1]}, got {baud}")
    hold_s = t.number("hold_s", 20.0, minimum=5, maximum=120)
    card_led = _opt_pin(t, "card_led_pin")
    prefix = t.opt_text("hall_card_prefix")
    if prefix is not None and (problem := hall_prefix_problem(prefix)) is not None:
        raise t.error("hall_card_prefix", f"{problem}, got {prefix!r}")
    t.done()
    return ScannerConfig(device=device, baudrate=baud, rules=CardRules(hold_s=hold_s, hall_prefix=prefix)), card_led


def _opt_pin(table: Table, name: str) -> int | None:
    return table.opt_integer(name, minimum=BCM_PINS.start, maximum=BCM_PINS.stop - 1)


def _buttons(root: Table) -> tuple[tuple[ButtonSpec, ...], tuple[ButtonWiring, ...], tuple[str, ...]]:
    """The buttons, their wiring, and how errors name each button's pin."""
    specs: list[ButtonSpec] = []
    wiring: list[ButtonWiring] = []
    tables = root.tables("buttons", required=True, id_key="key")
    for t in tables:
        key = t.text("key")
        if len(key) != 1 or key not in string.ascii_letters + string.digits:
            raise t.error("key", f"must be one letter or digit (the key to type in --simulate), got {key!r}")
        pin = t.integer("pin", minimum=BCM_PINS.start, maximum=BCM_PINS.stop - 1)
        priority = t.boolean("priority", False)
        category: str | None = None
        if priority:
            category = t.choice("category", PRIORITY_CATEGORIES, "other")
        elif t.has("category"):
            raise t.error("category", "only for priority buttons (priority = true)")
        label_en = nfc(t.name("label_en", "", allow_empty=True))
        specs.append(ButtonSpec(key=key, service=t.ident("service"), priority=priority, category=category,
                                label_vi=nfc(t.name("label_vi")), label_en=label_en))
        wiring.append(ButtonWiring(key=key, pin=pin))
        t.done()
    refuse_duplicates(tables, [spec.key for spec in specs], key="key")
    return tuple(specs), tuple(wiring), tuple(t.key("pin") for t in tables)


def _pins_distinct(root: Table, wiring: tuple[ButtonWiring, ...], pin_keys: tuple[str, ...],
                   leds: LedWiring) -> None:
    used: dict[int, str] = {}
    named = [(key, w.pin) for key, w in zip(pin_keys, wiring, strict=True)]
    named += [(f"gpio.{name}", pin) for name, pin in (("ready_led", leds.ready), ("busy_led", leds.busy),
                                                      ("fault_led", leds.fault), ("buzzer", leds.buzzer))
              if pin is not None]
    if leds.card is not None:
        named.append(("scanner.card_led_pin", leds.card))
    for key, pin in named:
        if pin in used:
            raise ConfigError(root.path, key, f"GPIO{pin} is already used by {used[pin]}")
        used[pin] = key


def _printer(t: Table) -> PrinterConfig:
    kind = cast(PrinterType, t.choice("type", PRINTER_TYPES, "preview"))
    width_mm = t.integer("paper_width_mm", 80)
    if width_mm not in PAPER_DOTS:
        raise t.error("paper_width_mm", f"must be 58 or 80, got {width_mm}")
    profile = t.text("profile", "default")
    known = profile_names()
    if profile not in known:
        raise t.error("profile", f"unknown python-escpos profile {profile!r} (e.g. TM-T20II, POS-5890, default)")
    profile_dots = profile_width_dots(profile)
    if profile_dots is not None and profile_dots < PAPER_DOTS[width_mm]:
        raise t.error("paper_width_mm", f"{width_mm} mm paper is {PAPER_DOTS[width_mm]} dots, but profile {profile} "
                                        f"prints at most {profile_dots}")
    base = PrinterConfig(
        type=kind, paper_width_mm=width_mm, profile=profile,
        status_poll_s=t.number("status_poll_s", 2.0, minimum=0.2, maximum=60),
        status_timeout_s=t.number("status_timeout_s", 0.5, minimum=0.05, maximum=5),
        preview_dir=Path(t.text("preview_dir", "var/previews")),
    )
    for other in PRINTER_TYPES:
        if other not in (kind, "preview") and t.has(other):
            raise t.error(other, f"is for type = \"{other}\", but type is \"{kind}\"")
    printer = base
    if kind == "usb":
        usb = t.table("usb", required=True)
        printer = replace(base, usb_vendor_id=usb.integer("vendor_id", minimum=1, maximum=0xFFFF),
                          usb_product_id=usb.integer("product_id", minimum=1, maximum=0xFFFF),
                          usb_timeout_ms=usb.integer("timeout_ms", 5000, minimum=100, maximum=60_000),
                          usb_in_ep=usb.opt_integer("in_ep", minimum=0x81, maximum=0x8F),
                          usb_out_ep=usb.opt_integer("out_ep", minimum=0x01, maximum=0x0F))
        usb.done()
    elif kind == "serial":
        serial = t.table("serial", required=True)
        baud = serial.integer("baudrate", 19200)
        if baud not in (9600, 19200, 38400, 57600, 115200):
            raise serial.error("baudrate", f"must be 9600, 19200, 38400, 57600 or 115200, got {baud}")
        printer = replace(base, serial_device=serial.text("device"), serial_baudrate=baud,
                          timeout_s=serial.number("timeout_s", 30.0, minimum=1, maximum=120))
        serial.done()
    elif kind == "network":
        network = t.table("network", required=True)
        printer = replace(base, network_host=network.text("host"),
                          network_port=network.integer("port", 9100, minimum=1, maximum=65535),
                          timeout_s=network.number("timeout_s", 10.0, minimum=1, maximum=120))
        network.done()
    elif kind == "file":
        file = t.table("file", required=True)
        printer = replace(base, file_device=file.text("device"))
        file.done()
    t.done()
    return printer


def _ticket(t: Table, *, hall: str, dispenser: str) -> TicketLayout:
    qr = t.text("qr", "", allow_empty=True)
    if len(qr) > 500:
        # With its fields filled in, the content must fit a QR code a 58 mm printer can still print and scan.
        raise t.error("qr", f"template of {len(qr)} characters; at most 500")
    if qr:
        try:
            qr.format(**{name: "x" for name in QR_FIELDS})
        except (KeyError, IndexError, ValueError) as exc:
            raise t.error("qr", f"bad template {qr!r}: use only {{{'}, {'.join(QR_FIELDS)}}} ({exc})") from None
    logo = t.opt_text("logo")
    if logo is not None:
        try:
            with Image.open(logo) as image:
                image.verify()
        except (OSError, UnidentifiedImageError) as exc:
            raise t.error("logo", f"cannot read image {logo}: {exc}") from None
    fonts = {}
    for name, default in (("font", DEFAULT_FONT), ("font_bold", DEFAULT_BOLD_FONT)):
        font = Path(t.text(name, str(default)))
        if not font.is_file():
            raise t.error(name, f"{font} does not exist (Debian: apt-get install fonts-dejavu-core)")
        fonts[name] = font
    layout = TicketLayout(hall_name=nfc(t.name("hall_name")), hall_id=hall, dispenser_id=dispenser,
                          english=t.boolean("english", True), qr=qr, footer=nfc(t.text("footer", "", allow_empty=True)),
                          logo=None if logo is None else Path(logo), font=fonts["font"], font_bold=fonts["font_bold"])
    t.done()
    return layout
