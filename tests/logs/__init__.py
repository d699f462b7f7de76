"""What the log says: progress lines, messages said once and saying what happened."""
