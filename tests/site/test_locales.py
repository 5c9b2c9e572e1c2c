"""The translated interface strings match the English ones key for key and placeholder for placeholder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

LOCALES = Path(__file__).resolve().parents[2] / "src" / "actas" / "publish" / "locales"
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
TRANSLATIONS = ("es", "pt")
# Keys whose translation may equal the English text: short codes and words spelled the same
# ("Mesa", "Total"; in Spanish also "Acta: {contest}" and "error").
SAME_AS_ENGLISH = frozenset({"mesa", "mesas", "total", "acta_for", "severity_error"})


def _load(lang: str) -> dict[str, str]:
    data = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    strings: dict[str, str] = {}
    for key, value in data.items():
        assert isinstance(key, str)
        assert isinstance(value, str), f"{lang}: {key} is not a string"
        strings[key] = value
    return strings


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def english() -> dict[str, str]:
    return _load("en")


def test_english_strings_are_not_empty(english: dict[str, str]) -> None:
    assert english
    assert [key for key, value in english.items() if not value.strip()] == []


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_same_keys_in_same_order(lang: str, english: dict[str, str]) -> None:
    translated = _load(lang)
    assert set(translated) == set(english)
    assert list(translated) == list(english)


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_same_placeholders(lang: str, english: dict[str, str]) -> None:
    translated = _load(lang)
    mismatched = {
        key: (_placeholders(english[key]), _placeholders(value))
        for key, value in translated.items()
        if key in english and _placeholders(value) != _placeholders(english[key])
    }
    assert mismatched == {}


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_strings_are_not_empty(lang: str) -> None:
    translated = _load(lang)
    assert [key for key, value in translated.items() if not value.strip()] == []


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_strings_are_translated(lang: str, english: dict[str, str]) -> None:
    translated = _load(lang)
    untranslated = [
        key
        for key, value in translated.items()
        if key not in SAME_AS_ENGLISH and key in english and value == english[key]
    ]
    assert untranslated == []


@pytest.mark.parametrize(("lang", "name"), [("es", "Español"), ("pt", "Português")])
def test_language_name(lang: str, name: str) -> None:
    assert _load(lang)["lang_name"] == name
