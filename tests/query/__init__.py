"""The v5 query streams: row-exact syncs, page chains, and what a real account does to them."""
