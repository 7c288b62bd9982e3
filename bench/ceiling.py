"""The yardstick: a bare Tornado JSON POST handler, nothing else.

    python -m bench.ceiling PORT

It parses the JSON body and answers a small JSON object, as the webhook route
does before it touches a channel or the database. Whatever the gateway spends
beyond this per request is ours to account for.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tornado.web import Application, RequestHandler


class Echo(RequestHandler):
    def post(self) -> None:
        update = json.loads(self.request.body)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ok": True, "update_id": update.get("update_id")}))


async def serve(port: int) -> None:
    Application([(r"/webhooks/.*", Echo)], log_function=lambda _handler: None).listen(
        port, "127.0.0.1"
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
