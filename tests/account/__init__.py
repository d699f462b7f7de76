"""A real account's differences: its fields, renderings and hosts, and the prospect account's own fields."""
