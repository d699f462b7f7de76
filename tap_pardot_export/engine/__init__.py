"""The engine of a sync: windows, state, the export queue, the recycle bin, the join, typing.

No HTTP here: exports are run through the runner the session hands over (``..pardot``), and
Singer is reached only through the small protocols the streams implement.
"""
