"""Timestamp values: ``YYYY-MM-DD``, RFC 3339 and relative times, as Unix microseconds.

Also ``now`` and the conversions to and from ``datetime``. Mirrors
``core_ext/rust/src/filter/time.rs``; named ``timestamps`` so as not to read as the
standard library's ``time`` (which this module imports).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from typing import Final

_MICROS: Final = 1_000_000
_DAY_MICROS: Final = 86_400 * _MICROS
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_MIN_MICROS: Final = (dt.date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_MICROS
_MAX_MICROS: Final = (dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * _DAY_MICROS - 1
_MIN_NOW: Final = -62_135_596_800.0
_MAX_NOW: Final = 253_402_300_799.0
_UNIT_MICROS: Final = {"s": _MICROS, "m": 60 * _MICROS, "h": 3600 * _MICROS, "d": _DAY_MICROS}
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MICRO: Final = dt.timedelta(microseconds=1)

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_RELATIVE = re.compile(r"-([0-9]+)([smhd])")


def _seconds(micros: int) -> float:
    """Unix seconds as the filter compares them (the same rounding in every backend)."""
    return float(micros) / 1e6


def _datetime_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


def _micros_datetime(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def _now_micros(now: float | None) -> int:
    if now is None:
        now = time.time()
    math.isfinite(now)  # converts as a C double does: TypeError for str and None
    seconds = float(now)
    if not _MIN_NOW <= seconds <= _MAX_NOW:
        raise ValueError("now must be a finite Unix time in years 1 to 9999")
    return round(seconds * 1e6)


def _parse_timestamp(text: str, now_micros: int) -> int | None:
    """Microseconds since the epoch; None when ``text`` has no timestamp form.

    Raises OverflowError when it has one but lies outside years 1 to 9999.
    """
    m = _RELATIVE.fullmatch(text)
    if m is not None:
        digits, unit = m.groups()
        if len(digits) > 12:
            raise OverflowError
        micros = now_micros - int(digits) * _UNIT_MICROS[unit]
    else:
        m = _DATE.fullmatch(text)
        if m is not None:
            year, month, day = (int(g) for g in m.groups())
            hour = minute = second = fraction = offset = 0
        else:
            m = _DATETIME.fullmatch(text)
            if m is None:
                return None
            year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
            frac, sign, off_h, off_m = m.groups()[6:]
            fraction = int((frac or "")[:6].ljust(6, "0"))
            offset = 0
            if sign is not None:
                if int(off_h) > 23 or int(off_m) > 59:
                    return None
                offset = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
            if hour > 23 or minute > 59 or second > 59:
                return None
        try:
            days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        micros = seconds * _MICROS + fraction
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise OverflowError
    return micros
