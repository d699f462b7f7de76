"""``python -m tap_pardot_export``."""

from tap_pardot_export.tap import TapPardotExport

TapPardotExport.cli()
