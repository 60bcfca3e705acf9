"""Fixtures for the web tests live in tests/conftest.py (``live``)."""
