"""Thin Tornado request handlers, one module per area, each ending in ``routes``."""
