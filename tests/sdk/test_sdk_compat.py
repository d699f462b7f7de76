"""The contract with singer-sdk: every SDK name the tap relies on exists, with its parameters.

When an SDK release renames, removes or re-signs one of them, a test here fails naming it,
instead of the tap breaking at run time. And no module but sdk_compat.py reaches a private
SDK name.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing as t
from pathlib import Path

import pytest
from singer_sdk import Stream

from tap_pardot_export import sdk_compat

if t.TYPE_CHECKING:
    from singer_sdk.helpers._state import StateWriter

PACKAGE = Path(sdk_compat.__file__).parent


def _label(entry: tuple[type, str, tuple[str, ...]]) -> str:
    owner, name, _ = entry
    return f"{owner.__module__}.{owner.__qualname__}.{name}"


@pytest.mark.parametrize("entry", sdk_compat.CONTRACT, ids=_label)
def test_sdk_symbol_exists_with_its_parameters(entry):
    owner, name, params = entry
    symbol = _label(entry)
    assert hasattr(owner, name), f"singer-sdk no longer has {symbol}: update tap_pardot_export/sdk_compat.py"
    attr = inspect.getattr_static(owner, name)
    if isinstance(attr, property) or not params:
        return  # a property or attribute: its existence is the contract
    func = getattr(owner, name)
    assert callable(func), f"{symbol} is no longer callable: update tap_pardot_export/sdk_compat.py"
    have = [p for p in inspect.signature(func).parameters if p != "self"]
    missing = [p for p in params if p not in have]
    assert not missing, f"{symbol} lost parameter(s) {missing} (now {have}): update tap_pardot_export/sdk_compat.py"
    assert [p for p in have if p in params] == list(params), f"{symbol} reordered its parameters: now {have}"


def test_state_manager_keeps_the_members_the_tap_uses():
    prop = inspect.getattr_static(Stream, "state_manager")
    assert isinstance(prop, property), "singer-sdk Stream.state_manager is no longer a property"
    assert prop.fget is not None
    manager_cls = inspect.signature(prop.fget).return_annotation
    from singer_sdk.streams._state import StreamStateManager

    assert "StreamStateManager" in str(manager_cls)
    for name, params in (("finalize_state", ["state"]), ("write_starting_replication_value", ["context"])):
        assert hasattr(StreamStateManager, name), f"singer-sdk StreamStateManager.{name} is gone"
        have = list(inspect.signature(getattr(StreamStateManager, name)).parameters)
        assert all(p in have for p in params), f"StreamStateManager.{name} is now {have}"


class _Writer:
    """Stands in for the SDK's StateWriter: records the states it is given."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def write_state(self, state: dict) -> None:
        self.states.append(state)


def test_a_stream_marked_flushed_is_not_written_again_by_the_sdk():
    """mark_state_flushed is what the SDK reads before it writes a stream's STATE (its end-of-stream write)."""
    from tap_pardot_export.tap import TapPardotExport

    tap = TapPardotExport(config={"start_date": "2024-01-01"}, parse_env_config=False, validate_config=False)
    writer = _Writer()
    tap._state_writer = t.cast("StateWriter", writer)  # the SDK's writer, observed
    stream = tap.streams["prospect"]
    sdk_compat.mark_state_flushed(stream, flushed=True)
    stream._write_state_message()
    assert writer.states == [], "the SDK wrote a STATE the tap said was written"
    sdk_compat.mark_state_flushed(stream, flushed=False)
    stream._write_state_message()
    assert len(writer.states) == 1, "the SDK no longer writes a STATE the tap says is not written"


def test_the_sdk_uses_its_own_session_only_where_the_authenticator_overrides_it():
    """The SDK's OAuth session follows redirects; the tap's authenticator never lets it send a request."""
    from singer_sdk.authenticators import OAuthAuthenticator

    from tap_pardot_export.pardot.auth import PardotAuthenticator

    users = {
        name
        for name, member in vars(OAuthAuthenticator).items()
        if callable(member) and "self._session" in inspect.getsource(member)
    }
    assert users <= {"__init__", "update_access_token"}, f"singer-sdk sends with its own session in {users}"
    assert "update_access_token" in vars(PardotAuthenticator)


def test_the_tap_replaces_the_sdks_signal_handlers():
    """The SDK installs its handlers while the tap is built; the tap's own, installed after, must win."""
    import signal

    from singer_sdk.plugin_base import PluginBase

    from tap_pardot_export.signals import SHUTDOWN
    from tap_pardot_export.tap import TapPardotExport

    assert "_setup_signal_handlers()" in inspect.getsource(PluginBase.__init__), "singer-sdk moved its signal set-up"
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        TapPardotExport(config={"start_date": "2024-01-01"}, parse_env_config=False, validate_config=False)
        assert signal.getsignal(signal.SIGTERM) == SHUTDOWN.handle
        assert signal.getsignal(signal.SIGINT) == SHUTDOWN.handle
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_state_writer_writes_state():
    from singer_sdk.helpers._state import StateWriter

    have = list(inspect.signature(StateWriter.write_state).parameters)
    assert have == ["self", "state"], f"StateWriter.write_state is now {have}"


def test_type_conformance_level_is_public():
    from singer_sdk.helpers.conform import TypeConformanceLevel

    assert sdk_compat.TypeConformanceLevel is TypeConformanceLevel
    assert TypeConformanceLevel.NONE.name == "NONE"


@pytest.mark.parametrize("module", sdk_compat.PRIVATE_MODULES)
def test_private_modules_still_import(module):
    importlib.import_module(module)


def test_the_hooks_override_sdk_names():
    """A hook whose SDK name changed would silently never be called."""
    for cls, names in (
        (sdk_compat.ExportStreamHooks, ("_sync_records", "_increment_stream_state", "sync")),
        (sdk_compat.TapHooks, ("_validate_config",)),
    ):
        for name in names:
            base = cls.__mro__[1]
            assert name in vars(cls), f"{cls.__name__}.{name} is not defined"
            assert hasattr(base, name), f"singer-sdk {base.__name__}.{name} is gone: the override is dead code"


PRIVATE_USE = re.compile(
    r"singer_sdk(?:\.\w+)*\._\w+|\.(_sync_records|_increment_stream_state|_write_state_message|"
    r"_finalize_state|_write_starting_replication_value|_stream_version|_handle_termination|"
    r"_state_writer|_validate_config|_tap|excepthook)\b"
)


def test_no_other_module_reaches_sdk_internals():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "sdk_compat.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if PRIVATE_USE.search(code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "private SDK names outside sdk_compat.py:\n" + "\n".join(offenders)


def test_the_config_dict_the_checks_fill_in_is_the_tap_config():
    """settings.validate fills in defaults in the SDK's own config dict (``_config``)."""
    from tap_pardot_export.tap import TapPardotExport

    tap = TapPardotExport(config={"start_date": "2024-01-01"}, parse_env_config=False, validate_config=False)
    raw = sdk_compat.raw_config(tap)
    assert raw, "singer-sdk no longer keeps the config in Tap._config: update sdk_compat.raw_config"
    raw["__probe__"] = 1
    assert tap.config.get("__probe__") == 1, "Tap.config is no longer a view of Tap._config"
