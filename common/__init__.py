"""Helpers every layer uses and that know nothing of ours: no channel, no storage."""
