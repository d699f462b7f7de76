"""The streams: their specs, discovery, and their columns."""
