"""The agents' inbox: a single page served from files in this package.

Plain HTML, CSS and JavaScript modules, no build step and no CDN: the page talks
to this gateway only, through the same REST API and event stream as any client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from handlers.base import public

ASSETS = Path(__file__).parent / "static" / "inbox"

# Nothing inline and nothing from elsewhere: contact-supplied text that slipped into
# markup could not run, and the page can reach no host but this one.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


@public("the inbox's page and assets; every call it makes signs in")
class InboxHandler(tornado.web.StaticFileHandler):
    def set_extra_headers(self, path: str) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-cache")  # an upgrade shows at the next load

    def get_content_type(self) -> str:
        if self.absolute_path and self.absolute_path.endswith(".js"):
            return "text/javascript; charset=utf-8"  # modules need a JavaScript type
        return super().get_content_type()


@public("sends / and /inbox to /inbox/, where the page's relative links resolve")
class InboxRedirect(tornado.web.RedirectHandler):
    pass


routes: list[tuple[str, type, dict[str, Any]]] = [
    # Someone who opens the gateway's address: not permanent, / may serve more one day.
    (r"/", InboxRedirect, {"url": "/inbox/", "permanent": False}),
    (r"/inbox", InboxRedirect, {"url": "/inbox/"}),
    (r"/inbox/(.*)", InboxHandler, {"path": str(ASSETS), "default_filename": "index.html"}),
]
