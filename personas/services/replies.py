"""What a customer's text reply means, read the way people write: ``Stop.``, ``"stop"``,
``STOP!!``, ``Stop 🛑``, full-width ``ＳＴＯＰ`` and "please stop texting me" all opt out.

Pure: no database, no side effects. The keyword lists come from settings at call time
(``PERSONAS_SMS_*_KEYWORDS``, ``PERSONAS_SMS_SHORT_REPLY_WORDS``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

Intent = Literal["opt_out", "confirm", "opt_in", "help", "other"]

# Quote marks vanish rather than split a word ("don't" reads DONT, not DON T).
_QUOTES = frozenset("'\"`´‘’‚‛“”„‟′″‹›«»ʼ＂＇")


@dataclass(frozen=True)
class Reply:
    """The reading of one reply: its intent and the keyword that decided it ("" for other)."""

    intent: Intent
    keyword: str = ""


def normalize(body: str) -> str:
    """Upper-case words separated by single spaces; punctuation, symbols and emoji removed.

    Quote marks and invisible format characters (zero-width joiners, variation selectors)
    vanish; every other character that is not a letter, digit or combining mark becomes a
    space. Done before NFKC too, so a symbol such as ``™`` never turns into letters, and after
    it, so full-width ``ＳＴＯＰ`` reads ``STOP``.
    """
    text = unicodedata.normalize("NFKC", _blank_out(body or ""))
    return " ".join(_blank_out(text.casefold().upper()).split())


def _blank_out(text: str) -> str:
    out: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if char in _QUOTES or category == "Cf" or _is_variation_selector(char):
            continue
        if category[0] in "LN" or (category in ("Mn", "Mc") and out and out[-1] != " "):
            out.append(char)
        else:  # punctuation, symbols, emoji, spaces, controls, stray marks
            out.append(" ")
    return "".join(out)


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _keywords(values: Iterable[str]) -> list[tuple[str, ...]]:
    """Each configured keyword as its normalised words (empty ones left out)."""
    return [words for words in (tuple(normalize(v).split()) for v in values) if words]


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(words[i : i + size] == phrase for i in range(len(words) - size + 1))


def parse_reply(body: str) -> Reply:
    """Read a text reply: opt-out beats everything, then confirm, then START, then HELP.

    - opt_out: the reply is an opt-out keyword, or a short reply (at most
      ``PERSONAS_SMS_SHORT_REPLY_WORDS`` words) holding one as whole words ("please stop").
    - confirm: the reply is a confirm keyword or begins with one ("Yes please", not "yesterday").
    - opt_in / help: the reply is exactly one of those keywords.
    """
    words = tuple(normalize(body).split())
    if not words:
        return Reply("other")
    short = len(words) <= settings.PERSONAS_SMS_SHORT_REPLY_WORDS
    opt_out = _keywords(settings.PERSONAS_SMS_OPT_OUT_KEYWORDS)
    exact = [kw for kw in opt_out if kw == words]
    found = exact or ([kw for kw in opt_out if _contains(words, kw)] if short else [])
    if found:
        return Reply("opt_out", " ".join(max(found, key=len)))
    for kw in _keywords(settings.PERSONAS_SMS_CONFIRM_KEYWORDS):
        if words[: len(kw)] == kw:
            return Reply("confirm", " ".join(kw))
    exact_only: tuple[tuple[Intent, list[str]], ...] = (
        ("opt_in", settings.PERSONAS_SMS_START_KEYWORDS),
        ("help", settings.PERSONAS_SMS_HELP_KEYWORDS),
    )
    for intent, values in exact_only:
        if words in _keywords(values):
            return Reply(intent, " ".join(words))
    return Reply("other")
