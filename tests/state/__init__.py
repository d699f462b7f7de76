"""State: bookmarks and resumed runs, corrupted states, spoiled exports left out, the export record."""
