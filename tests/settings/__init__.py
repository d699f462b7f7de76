"""Settings: the schema, values refused clearly before any call, dates and zones, every entry point."""
