"""Streams wider than an export: field groups joined by id, whole and exact, also under faults."""
