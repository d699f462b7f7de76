"""What every stream of the tap shares, whatever reads it (exports or query pages).

The properties the catalog selects, the catalog checks made before the run's first call
(``capture_deletes``, ``business_unit_key``), and a failure kept to its stream.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_pardot_export.columns import business_unit_catalog_error
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.sdk_compat import ExportStreamHooks
from tap_pardot_export.session import ENDS_THE_RUN

if t.TYPE_CHECKING:
    from tap_pardot_export.session import StreamFailures
    from tap_pardot_export.settings.config import Settings

#: when capture_deletes is on: when the record was seen in Pardot's recycle bin (null: live)
DELETED_AT = "_sdc_deleted_at"


class PardotStream(ExportStreamHooks):
    """A stream of the tap: its subclasses set ``settings``, ``failures`` and ``constants`` when built."""

    settings: Settings
    failures: StreamFailures
    #: the values every record carries (business_unit_id with business_unit_key), by column
    constants: dict[str, t.Any]

    def selected_properties(self) -> list[str]:
        """Properties selected in the catalog."""
        mask = self.mask
        return [name for name in self.schema["properties"] if mask.get(("properties", name), True)]

    def check_catalog(self) -> None:
        """Before the run's first call: refuse a catalog the run cannot honour (a selected stream's only)."""
        if not self.selected:
            return
        catalog = self.effective_schema.get("properties", {})
        if DELETED_AT in self.schema["properties"] and DELETED_AT not in catalog:
            msg = (
                f"stream {self.name}: capture_deletes is on but the catalog has no {DELETED_AT} property, so the "
                "target could not tell deleted records from live ones: run discovery again (--discover) and use "
                "the new catalog, or turn capture_deletes off."
            )
            raise PardotConfigError(msg)
        problem = business_unit_catalog_error(self.name, on=bool(self.constants), catalog=catalog)
        if problem:
            raise PardotConfigError(problem)

    @override
    def isolate_failure(self, exc: Exception) -> bool:
        """Record this stream's failure and let the run go on, unless it ends the run (or fail_fast is on)."""
        if isinstance(exc, ENDS_THE_RUN) or self.settings.fail_fast:
            return False
        self.failures.add(self.name, exc, self.logger)
        self.emit_state()  # what the failure left: its exports in flight, its bookmark
        return True
