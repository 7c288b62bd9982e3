"""FAQs: questions the gateway answers by itself, and what to write next."""

from __future__ import annotations

from handlers import schemas
from handlers.base import BaseHandler, needs, presenter
from storage.models import Scope

present = presenter(schemas.Faq())
_suggestion = schemas.Suggestion()


class FaqsHandler(BaseHandler):
    @needs(Scope.ADMIN)
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
        faq = await self.services.faqs.create(self.json_body(schemas.FaqCreate()))
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
        await self.write_page(self.services.storage.faqs.list_page, present)


class FaqHandler(BaseHandler):
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
        self.write_json(present(await self.services.faqs.get(faq_id)))

    @needs(Scope.ADMIN)
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
        changes = self.json_body(schemas.FaqUpdate())
        self.write_json(present(await self.services.faqs.update(faq_id, changes)))

    @needs(Scope.ADMIN)
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
        await self.services.faqs.delete(faq_id)
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
        found = await self.services.faqs.suggestions(query["days"], query["limit"])
        self.write_json({"results": [_suggestion.dump(row) for row in found]})


routes = [
    (r"/api/v1/faqs/", FaqsHandler),
    (r"/api/v1/faqs/suggestions/", SuggestionsHandler),
    (r"/api/v1/faqs/(?P<faq_id>[^/]+)/", FaqHandler),
]
