"""The one vocabulary every fake provider's sends are scripted in.

A fake answers each send with the next entry of its ``send_script``, then with
:data:`OK` once the script is used up:

- :data:`OK`: accepted, as the provider accepts a message;
- :data:`DROP`: the connection closes with no answer, like a network failure;
- :class:`Fail`: an error answer with an HTTP status, the provider's own error code
  and message, and for a flood wait the seconds to wait (``retry_after``).

A script left with entries when the fake stops fails the test (``assert_all_used``):
the fault it meant to inject never happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True)
class Drop:
    def __repr__(self) -> str:
        return "DROP"


@dataclass(frozen=True)
class Fail:
    status: int  # the HTTP status
    code: int = 0  # the provider's error code (Twilio's 63003, Graph's 131047); 0: the status
    message: str = ""
    retry_after: int | None = None  # seconds, for a flood wait


OK: Final = "ok"
DROP: Final = Drop()
Answer = Literal["ok"] | Drop | Fail


def next_answer(script: list[Answer]) -> Answer:
    return script.pop(0) if script else OK
