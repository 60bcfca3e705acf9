"""A digest's cron schedule said in words: "Mondays at 08:00, Europe/Berlin". Pure.

Only the forms people write for a newsletter are said: fixed minutes and hours, any day or
a few weekdays, any month, a day of the month. Anything else (steps, ranges of hours, several
months, a day of the month *and* weekdays) is shown as the cron text itself, which is at least
exact: a wrong sentence would be worse than none.
"""

from __future__ import annotations

DAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")
DAY_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


def schedule_in_words(cron: str, timezone: str) -> str:
    """The schedule as a sentence, e.g. ``"Mondays at 08:00, Europe/Berlin"``, or
    ``"cron 0 8 */2 * *, Europe/Berlin"`` when it cannot be said simply."""
    said = _said(cron)
    return f"{said}, {timezone}" if said else f"cron {' '.join(cron.split())}, {timezone}"


def _said(cron: str) -> str | None:
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    minutes, hours = _numbers(minute, 59), _numbers(hour, 23)
    if minutes is None or hours is None or month != "*":
        return None
    times = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
    if len(times) > 4:
        return None
    at = "at " + _joined(times)
    if day == "*" and weekday in ("*", "?"):
        return f"Every day {at}"
    if day == "*":
        days = _weekdays(weekday)
        if days is None:
            return None
        if len(days) == len(DAYS):
            return f"Every day {at}"
        if days == [1, 2, 3, 4, 5]:
            return f"Weekdays {at}"
        if days == [0, 6]:
            return f"Saturdays and Sundays {at}"
        return f"{_joined([DAYS[d] for d in days])} {at}"
    if weekday in ("*", "?"):
        dates = _numbers(day, 31, low=1)
        if dates is None or len(dates) > 3:
            return None
        return f"On the {_joined([_ordinal(d) for d in dates])} of every month {at}"
    return None


def _numbers(text: str, high: int, low: int = 0) -> list[int] | None:
    """A comma list of plain numbers within [low, high], sorted; None for anything else."""
    values = []
    for part in text.split(","):
        if not part.isdigit():
            return None
        value = int(part)
        if not low <= value <= high:
            return None
        values.append(value)
    return sorted(set(values))


def _weekdays(text: str) -> list[int] | None:
    """Weekdays given by name, or a range of names ``mon-fri``."""
    days: set[int] = set()
    for part in text.lower().split(","):
        ends = part.split("-")
        if len(ends) > 2:
            return None
        found = [_weekday(end) for end in ends]
        if any(d is None for d in found):
            return None
        first, last = found[0], found[-1]
        assert first is not None and last is not None
        if last < first:
            return None
        days.update(range(first, last + 1))
    return sorted(days)


def _weekday(text: str) -> int | None:
    """A weekday by name: the config refuses numbers (APScheduler reads 0 as Monday, cron as
    Sunday), so a number is not said."""
    return DAY_NAMES.get(text)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
