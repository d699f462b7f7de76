"""capture_deletes: Pardot's recycle bin read at the pass cadence, deleted records marked."""
