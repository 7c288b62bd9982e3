"""What ``?q=`` finds: conversations whose contact has, for each word of ``q``, a
word of their name, username or provider id that starts with it, in any case and
with or without accents (``joao`` finds João: both are folded the same way).

Word prefixes, not any substring, because an index can answer them: a contact's
words are a multikey index on ``contacts`` (written about once a minute per
contact), and each conversation keeps them as one string, ``search``, that a
regular expression checks within a page's window (storage/conversations.py).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

WORD = re.compile(r"\w+")
HIGHEST = "\U0010ffff"  # after every character: ``w`` to ``w + HIGHEST`` are w's extensions


def fold(text: str) -> str:
    """``text`` case-folded, in compatibility form, without combining marks: "João"
    and "JOAO" are both "joao", "ﬁle" is "file"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(*texts: str) -> list[str]:
    """The distinct words of ``texts``, folded (:func:`fold`), in a stable order."""
    return sorted({w for text in texts for w in WORD.findall(fold(text))})


def search_text(found: list[str]) -> str:
    """The words as one string, each after a space: `` ana maria 5511``."""
    return "".join(" " + w for w in found)


def text_pattern(wanted: list[str]) -> dict[str, Any]:
    """A regex on :func:`search_text` holding every word of ``wanted`` as a prefix."""
    if len(wanted) == 1:
        return {"$regex": re.escape(" " + wanted[0])}
    return {"$regex": "".join(f"(?=.* {re.escape(w)})" for w in wanted)}


def word_range(wanted: list[str]) -> dict[str, Any]:
    """The index range of contacts' words for the longest of ``wanted`` (the fewest
    contacts share it); the text pattern checks the others."""
    longest = max(wanted, key=len)
    return {"$gte": longest, "$lt": longest + HIGHEST}
