"""Errors while a result file is written to disk, told from the network's, and no signature printed.

A full disk (a file size limit under bash's ``ulimit``), also in a download's last bytes, stops the
run at once saying what to do, leaves nothing in TMPDIR and is not retried; a dropped or cut
download is the network's and is fetched again. A result link's signature (a signed storage
link's query) is in no message.
"""

from __future__ import annotations

import sys
import typing as t

import pytest
from pardot_export_sandbox import DataConfig

from tests.helpers import (
    TapRun,
    assert_rows_match,
    discover,
    expected_rows,
    run_tap,
    run_with_file_limit,
    select_streams,
)
from tests.sandbox_runs import one_stream, rewrite_stored, small
from tests.wide_helpers import END, START

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

LM = "list_membership"

SIGNATURE = "X-Amz-Signature=s3cr3tS1gnature0123456789"


def cut_rows(data: bytes, lo: int, hi: int) -> bytes:
    """``data``'s header and its first rows, between ``lo`` and ``hi`` bytes in all."""
    lines = [x for x in data.split(b"\r\n") if x]
    out = lines[0] + b"\r\n"
    for line in lines[1:]:
        if len(out) + len(line) + 2 > hi:
            break
        out += line + b"\r\n"
    assert lo < len(out) <= hi, len(out)
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="a file size limit through bash's ulimit")
def test_a_full_disk_on_a_downloads_last_bytes_is_a_disk_error_too(fresh_sandbox, tmp_path):
    """The file size limit falls in the last 1-2 KiB, which the file's buffer held until it was closed.

    Before the fix those bytes were written at close, outside the disk check: a raw
    ``OSError: [Errno 27] File too large`` with a traceback, and "27" as the message.
    """
    sb = fresh_sandbox(rows_per_file=100_000, data=DataConfig(start=START, end=END, rows={LM: 3000}))
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    rewrite_stored(sb, lambda n, e, data: cut_rows(data, 65 * 1024 + 100, 65 * 1024 + 2000))
    proc, folder = run_with_file_limit(cfg, cat, 65, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "writing it to disk failed (File too large)" in proc.stderr
    assert "free disk space or point TMPDIR at a larger disk" in proc.stderr
    assert sb.stats()["calls"]["download"] == 1
    assert not list(folder.rglob("*")), "nothing left in TMPDIR"


def check_all(sb: Sandbox, runs: list[TapRun], stream: str) -> None:
    got = [r for run in runs for r in run.records(stream)]
    assert_rows_match(sb, stream, got, expected_rows(sb, stream, START, END), sb.config.data.timezone)


def signed_links(sb: Sandbox) -> None:
    """Result links carry a signature in their query string, as signed storage links do."""
    original = sb.state.export_repr

    def export_repr(e: t.Any, *, with_refs: bool = True) -> dict[str, t.Any]:
        out = original(e, with_refs=with_refs)
        refs = out.get("resultRefs")
        if isinstance(refs, str):
            out["resultRefs"] = f"{refs}?{SIGNATURE}"
        elif isinstance(refs, list):
            out["resultRefs"] = [f"{r}?{SIGNATURE}" for r in refs]
        return out

    sb.state.export_repr = export_repr  # type: ignore[method-assign]  # the test's stand-in for the sandbox's method


@pytest.mark.parametrize("fault", ["reset", "cut"])
def test_a_network_error_on_download_is_still_retried_and_its_message_keeps_no_signature(
    fresh_sandbox, instant_retries, fault
):
    """A dropped or cut download is the network's: fetched again, and the run ends whole (not a DiskError)."""
    sb = fresh_sandbox()
    signed_links(sb)
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    sb.inject(fault, count=2, op="download", after_bytes=500)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("download failed (") == 2, "fetched again after each fault"
    assert "writing it to disk failed" not in run.stderr
    assert "downloadResult/id/1001/resultId/0" in run.stderr, "the retry names the file"
    assert "s3cr3t" not in run.everything
    assert sb.config.client_secret not in run.everything
    check_all(sb, [run], LM)


@pytest.mark.skipif(sys.platform != "linux", reason="a file size limit through bash's ulimit")
def test_a_disk_error_names_the_file_without_its_signature(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(rows_per_file=100_000, data=DataConfig(start=START, end=END, rows={LM: 3000}))
    signed_links(sb)
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    proc, _ = run_with_file_limit(cfg, cat, 20, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "downloadResult/id/1001/resultId/0: writing it to disk failed" in proc.stderr
    assert "s3cr3t" not in proc.stderr + proc.stdout
    assert sb.config.client_secret not in proc.stderr + proc.stdout
    assert sb.config.refresh_token not in proc.stderr + proc.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="a file size limit through bash's ulimit")
def test_a_full_disk_under_a_download_stops_at_once_saying_so(fresh_sandbox, tmp_path):
    """A result file that cannot be written (a file size limit below its size): the disk's fault, not the network's."""
    sb = small(fresh_sandbox, rows_per_file=100_000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=365)
    proc, folder = run_with_file_limit(cfg, cat, 20, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-6000:]
    assert "free disk space or point TMPDIR at a larger disk" in proc.stderr
    assert "File too large" in proc.stderr
    assert sb.stats()["calls"]["download"] == 1, "no retry: a retry cannot fix a full disk"
    assert '"type":"RECORD"' not in proc.stdout
    assert not list(folder.rglob("*")), "nothing left in TMPDIR"
