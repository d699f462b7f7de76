"""The README and the pages under docs/: their commands run as written, their links resolve."""
