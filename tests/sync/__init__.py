"""Whole syncs correct to the row: every stream, local times, isolation of a failed stream, output forms."""
