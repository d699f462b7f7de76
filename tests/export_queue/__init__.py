"""Pardot's export queue: windows, exports created ahead and in flight, cancels, the daily limit, the call budget."""
