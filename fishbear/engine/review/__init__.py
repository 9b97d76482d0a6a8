"""Reviewing a dataset: what to look at first, the page and its server, the append-only
decisions, and applying or undoing them as moves."""
