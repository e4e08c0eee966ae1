"""Taskline: the shared Lambda layer (settings, database, models, schemas, security, services)."""
