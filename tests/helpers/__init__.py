"""Reusable test helpers (local HTTP server, cassette replay)."""
