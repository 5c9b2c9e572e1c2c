"""The site's languages: interface strings (locales/<code>.json) and number formatting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from actas.errors import NotFoundError

LANGUAGES = ("es", "en", "pt")
DEFAULT_LANGUAGE = "es"

# Thousands separator, decimal mark and the space (if any) before "%", as each language writes them.
_NUMBERS = {"en": (",", ".", ""), "es": (".", ",", "\u00a0"), "pt": (".", ",", "")}


@dataclass(frozen=True)
class Locale:
    """One language: its strings, and numbers written its way."""

    code: str
    strings: dict[str, str]

    def __getattr__(self, key: str) -> str:
        # Templates read strings as attributes (t.turnout); a missing key is a bug, not an empty label.
        try:
            return self.strings[key]
        except KeyError:
            raise AttributeError(f"locale {self.code}: no string {key!r}") from None

    def text(self, key: str, **values: object) -> str:
        """The string ``key`` with its {placeholders} filled in."""
        out = self.strings[key]
        for name, value in values.items():
            out = out.replace("{" + name + "}", str(value))
        return out

    def integer(self, value: int) -> str:
        """1234567 as 1,234,567 (en) or 1.234.567 (es, pt)."""
        return f"{value:,}".replace(",", _NUMBERS[self.code][0])

    def percent(self, part: int, whole: int, decimals: int = 1) -> str:
        """part/whole as a percentage with the language's decimal mark; a dash when whole is 0."""
        if whole <= 0:
            return "–"
        return self.fraction(part / whole, decimals)

    def fraction(self, value: float, decimals: int = 1) -> str:
        """0.512 as 51.2% (en), 51,2 % (es), 51,2% (pt)."""
        _, mark, space = _NUMBERS[self.code]
        return f"{value * 100:.{decimals}f}".replace(".", mark) + space + "%"


@cache
def locale(code: str) -> Locale:
    """The locale of a language code (one of LANGUAGES)."""
    if code not in LANGUAGES:
        raise NotFoundError(f"language {code!r}: must be one of {', '.join(LANGUAGES)}")
    data = resources.files("actas.publish").joinpath("locales", f"{code}.json").read_text(encoding="utf-8")
    strings = json.loads(data)
    return Locale(code, strings)
