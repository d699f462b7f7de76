"""The HTTP layer: transport, redirects, the host fence, first contact, retries, deadlines, tokens and secrets."""
