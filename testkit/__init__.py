"""What the tests and the benchmarks share: real processes and fake providers.

- ``processes``: the one launcher of the installed ``bot-gateway`` command;
- ``fakes``: the Bot API, Twilio and Graph API servers on 127.0.0.1, scripted in
  one vocabulary (``fakes.script``), each failing a test that leaves a scripted
  answer unused;
- ``helpers``: polling with a deadline, an HTTP client, sign-up, and the database
  as the inbound path leaves it (written by the inbound path's own bulk calls).

It is not installed with the gateway (pyproject.toml lists the packages that are).
"""
