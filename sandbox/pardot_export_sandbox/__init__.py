"""A local server that behaves like the Account Engagement (Pardot) Export API and v5 query API.

Only tests, the README demo and the benchmark use it; the tap never imports it.
"""

from __future__ import annotations

from pardot_export_sandbox.data import DataConfig, Dataset
from pardot_export_sandbox.server import FAULT_KINDS, Sandbox, SandboxConfig

__all__ = ["FAULT_KINDS", "DataConfig", "Dataset", "Sandbox", "SandboxConfig"]
