"""``python -m tap_pardot_export``."""

from tap_pardot_export.entry import main

main()
