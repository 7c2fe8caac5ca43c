"""What each refusal means, in words: Vietnamese, with the English in brackets.

Every role that shows or logs a refusal says it with these words (the counter's console, the kiosk's log, the
manager's pages); the controller's own message follows them. There is a label for every ``ErrorCode`` (a test
checks it), and a code this version does not know (from a newer controller) is shown as it is.
"""

from __future__ import annotations

from typing import Final

from hallq.wire import ErrorCode

ERROR_LABELS: Final[dict[ErrorCode, str]] = {
    ErrorCode.QUEUE_EMPTY: "Không còn số nào đang chờ (queue empty)",
    ErrorCode.COUNTER_CLOSED: "Quầy đang đóng (counter closed)",
    ErrorCode.COUNTER_BUSY: "Hãy hoàn thành số hiện tại trước (finish the current ticket first)",
    ErrorCode.NOT_SERVING: "Quầy chưa phục vụ số nào (not serving anyone)",
    ErrorCode.UNKNOWN_TICKET: "Không tìm thấy số này (unknown ticket)",
    ErrorCode.NOT_ALLOWED: "Quầy không phục vụ dịch vụ này (not allowed at this counter)",
    ErrorCode.UNKNOWN_SERVICE: "Không có dịch vụ này (unknown service)",
    ErrorCode.UNKNOWN_COUNTER: "Quầy chưa được khai báo trong hệ thống (unknown counter: check [counter] id)",
    ErrorCode.STORAGE_UNAVAILABLE: "Hệ thống tạm thời không lưu được, chưa có gì thay đổi (storage unavailable)",
    ErrorCode.BAD_REQUEST: "Lệnh không hợp lệ (bad request)",
    ErrorCode.UNSUPPORTED_VERSION: "Phiên bản không tương thích (unsupported version)",
    ErrorCode.CONFLICT: "Máy khác vừa thao tác trên quầy này; hãy xem lại số đang phục vụ "
                        "(conflict: another console acted on this counter)",
    ErrorCode.CLOCK_UNSYNCHRONISED: "Đồng hồ hệ thống chưa được đồng bộ, tạm chưa gọi số "
                                    "(the hall's clock is not set yet; calling resumes when it is)",
    ErrorCode.RATE_LIMITED: "Gửi lệnh quá nhanh, hãy chờ một chút (too many commands; wait a moment)",
    # Kiosks' refusals: a counter never receives them, but every code has its words.
    ErrorCode.UNKNOWN_DISPENSER: "Máy lấy số chưa được khai báo (unknown dispenser)",
    ErrorCode.SERVICE_CLOSED: "Dịch vụ ngoài giờ làm việc (service closed now)",
    ErrorCode.DAILY_CAP_REACHED: "Đã hết số trong ngày (the day's tickets are all issued)",
    ErrorCode.NUMBERS_EXHAUSTED: "Đã dùng hết dãy số (every number is in use)",
    ErrorCode.DAY_ENDED: "Ngày làm việc đã kết thúc sớm, hẹn quý khách ngày mai (the day was ended early)",
    ErrorCode.CARD_LIMIT: "Thẻ này đã lấy đủ số trong ngày (this card has taken its tickets for today)",
    ErrorCode.NO_PROFILE: "Số này không kèm thẻ công dân, không có hồ sơ (no card was read for this ticket)",
    # Ratings: the counter's rating buttons and the ticket's status page.
    ErrorCode.NOT_RATEABLE: "Lượt này không đánh giá được (this visit cannot be rated)",
    ErrorCode.RATING_CLOSED: "Đã hết thời gian đánh giá lượt này (the time to rate this visit has passed)",
    ErrorCode.ALREADY_RATED: "Lượt này đã được đánh giá, cảm ơn quý khách (this visit was rated already)",
}


def error_label(code: str) -> str:
    """The words for ``code``; the code itself if this version has none."""
    return _BY_TEXT.get(code, code)


_BY_TEXT: Final[dict[str, str]] = {code.value: label for code, label in ERROR_LABELS.items()}
