"""Writing FAQs: each phrasing answered by one FAQ only, and every change seen by the
next lookup (gateway/faq.py answers them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.errors import Conflict, NotFound, ValidationError
from gateway.faq import FaqResponder, normalize
from storage.faqs import FaqsRepository
from storage.models import Faq, Unanswered
from storage.records import utcnow


class FaqBook:
    def __init__(self, faqs: FaqsRepository, responder: FaqResponder) -> None:
        self.faqs = faqs
        self.responder = responder

    async def create(self, fields: dict[str, Any]) -> Faq:
        """A new FAQ from validated fields (question, alternatives, answer, enabled)."""
        faq = await self.faqs.create(await self._with_phrases(fields, None))
        await self.responder.invalidate()
        return faq

    async def get(self, faq_id: str) -> Faq:
        faq = await self.faqs.get(faq_id)
        if faq is None:
            raise NotFound(f"No such FAQ: {faq_id}")
        return faq

    async def update(self, faq_id: str, changes: dict[str, Any]) -> Faq:
        current = await self.get(faq_id)
        if not changes:
            raise ValidationError(
                "nothing to change: send question, alternatives, answer or enabled"
            )
        if "question" in changes or "alternatives" in changes:
            merged = {
                "question": changes.get("question", current.question),
                "alternatives": changes.get("alternatives", list(current.alternatives)),
            }
            changes = {**changes, **await self._with_phrases(merged, faq_id)}
        updated = await self.faqs.update(faq_id, changes)
        await self.responder.invalidate()
        if updated is None:
            raise NotFound(f"No such FAQ: {faq_id}")
        return updated

    async def delete(self, faq_id: str) -> None:
        if not await self.faqs.delete(faq_id):
            raise NotFound(f"No such FAQ: {faq_id}")
        await self.responder.invalidate()

    async def suggestions(self, days: int, limit: int) -> list[Unanswered]:
        """The most asked inbound texts of the last ``days`` that no FAQ answers."""
        since = utcnow() - timedelta(days=days)
        found = []
        for row in await self.faqs.unanswered(since, limit * 2):
            # An FAQ written since they were asked answers some of them now.
            if await self.responder.lookup(row.question) is None:
                found.append(row)
        return found[:limit]

    async def _with_phrases(self, fields: dict[str, Any], faq_id: str | None) -> dict[str, Any]:
        """The fields to store, with the normalised phrasings lookups match against."""
        phrases: list[str] = []
        for text in [fields["question"], *fields["alternatives"]]:
            phrase = normalize(text)
            if not phrase:
                raise ValidationError.of("question", f"{text!r} has no words to match")
            if phrase not in phrases:
                phrases.append(phrase)
        taken = await self.faqs.phrase_taken(phrases, except_id=faq_id)
        if taken is not None:
            raise Conflict(f"another FAQ already answers {taken!r}", {"question": ["taken"]})
        return {**fields, "phrases": phrases}
