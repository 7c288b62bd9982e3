"""The composition root: the ``bot-gateway`` command, and serving the HTTP app.

It sits above every other package (storage and channels ← gateway ← handlers ←
here), so nothing below imports it and the package graph has no cycle.
"""
