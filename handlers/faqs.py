"""FAQs: questions the gateway answers by itself, and what to write next."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.errors import Conflict, NotFound, ValidationError
from gateway.faq import normalize
from handlers import schemas
from handlers.base import BaseHandler, dump
from handlers.pagination import decode_cursor, page_response
from storage.records import utcnow

_faq = schemas.Faq()
_suggestion = schemas.Suggestion()


def present(faq: dict[str, Any]) -> dict[str, Any]:
    return dump(_faq, faq)


class _FaqWriter(BaseHandler):
    async def _with_phrases(self, fields: dict[str, Any], faq_id: str | None) -> dict[str, Any]:
        """The fields to store, with the normalised phrasings lookups match against."""
        phrases: list[str] = []
        for text in [fields["question"], *fields["alternatives"]]:
            phrase = normalize(text)
            if not phrase:
                raise ValidationError.of("question", f"{text!r} has no words to match")
            if phrase not in phrases:
                phrases.append(phrase)
        taken = await self.services.storage.faqs.phrase_taken(phrases, except_id=faq_id)
        if taken is not None:
            raise Conflict(f"another FAQ already answers {taken!r}", {"question": ["taken"]})
        return {**fields, "phrases": phrases}


class FaqsHandler(_FaqWriter):
    async def post(self) -> None:
        """Create an FAQ.
        ---
        summary: Create an FAQ the gateway answers by itself
        description: >-
          An inbound text matches when, case-folded and without accents,
          punctuation or extra spaces, it equals the question or an alternative.
        tags: [faqs]
        requestBody:
          required: true
          content: {application/json: {schema: FaqCreate}}
        responses:
          201: {description: The FAQ, content: {application/json: {schema: Faq}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        fields = await self._with_phrases(self.json_body(schemas.FaqCreate()), None)
        faq = await self.services.storage.faqs.create(fields)
        await self.services.faq.invalidate()
        self.write_json(present(faq), 201)

    async def get(self) -> None:
        """List FAQs.
        ---
        summary: List FAQs, newest first
        tags: [faqs]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of FAQs, content: {application/json: {schema: FaqPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        query = self.query(schemas.PageQuery())
        page = await self.services.storage.faqs.list_page(
            decode_cursor(query.get("cursor")), query["page_size"]
        )
        self.write_json(page_response(self, page, present))


class FaqHandler(_FaqWriter):
    async def _existing(self, faq_id: str) -> dict[str, Any]:
        faq = await self.services.storage.faqs.get(faq_id)
        if faq is None:
            raise NotFound(f"No such FAQ: {faq_id}")
        return faq

    async def get(self, faq_id: str) -> None:
        """Read an FAQ.
        ---
        summary: Read an FAQ
        tags: [faqs]
        parameters: [{in: path, name: faq_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The FAQ, content: {application/json: {schema: Faq}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        self.write_json(present(await self._existing(faq_id)))

    async def patch(self, faq_id: str) -> None:
        """Change an FAQ.
        ---
        summary: Change an FAQ; the next question gets the new answer
        tags: [faqs]
        parameters: [{in: path, name: faq_id, required: true, schema: {type: string}}]
        requestBody:
          required: true
          content: {application/json: {schema: FaqUpdate}}
        responses:
          200: {description: The FAQ, content: {application/json: {schema: Faq}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        current = await self._existing(faq_id)
        changes = self.json_body(schemas.FaqUpdate())
        if not changes:
            raise ValidationError(
                "nothing to change: send question, alternatives, answer or enabled"
            )
        if "question" in changes or "alternatives" in changes:
            merged = {
                "question": changes.get("question", current["question"]),
                "alternatives": changes.get("alternatives", current["alternatives"]),
            }
            changes = {**changes, **await self._with_phrases(merged, faq_id)}
        updated = await self.services.storage.faqs.update(faq_id, changes)
        await self.services.faq.invalidate()
        if updated is None:
            raise NotFound(f"No such FAQ: {faq_id}")
        self.write_json(present(updated))

    async def delete(self, faq_id: str) -> None:
        """Delete an FAQ.
        ---
        summary: Delete an FAQ
        tags: [faqs]
        parameters: [{in: path, name: faq_id, required: true, schema: {type: string}}]
        responses:
          204: {description: Deleted}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        if not await self.services.storage.faqs.delete(faq_id):
            raise NotFound(f"No such FAQ: {faq_id}")
        await self.services.faq.invalidate()
        self.set_status(204)
        self.finish()


class SuggestionsHandler(BaseHandler):
    async def get(self) -> None:
        """What to write next.
        ---
        summary: The most asked inbound questions no FAQ answers
        description: >-
          Normalised inbound texts of the last `days` days that no FAQ answered
          (and none answers now), by how many contacts asked them.
        tags: [faqs]
        parameters: [{in: query, schema: SuggestionQuery}]
        responses:
          200: {description: Suggestions, content: {application/json: {schema: Suggestions}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        query = self.query(schemas.SuggestionQuery())
        since = utcnow() - timedelta(days=query["days"])
        rows = await self.services.storage.faqs.unanswered(since, query["limit"] * 2)
        results = []
        for row in rows:  # an FAQ written since then answers some of them now
            if await self.services.faq.lookup(row["question"]) is None:
                results.append(_suggestion.dump(row))
        self.write_json({"results": results[: query["limit"]]})


routes = [
    (r"/api/v1/faqs/", FaqsHandler),
    (r"/api/v1/faqs/suggestions/", SuggestionsHandler),
    (r"/api/v1/faqs/(?P<faq_id>[^/]+)/", FaqHandler),
]
