"""SIGTERM and SIGINT on real tap processes, during a sync or discovery, and a stdout nobody reads."""
