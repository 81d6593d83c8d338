"""Shared application code that belongs to no single domain app (health, metrics, logging, parsing helpers)."""
