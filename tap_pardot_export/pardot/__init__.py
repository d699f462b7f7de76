"""The Pardot API: transport, retries, auth, the client, exports and their result files.

Nothing here knows Singer: no streams, messages or state. The engine (``..engine``) and the
Singer side (the package's top level) call in; nothing here calls out.
"""
