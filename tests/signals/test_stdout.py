"""A stdout (or stderr) nobody reads, or that closes: the line being written is finished, no export is left unknown.

SIGTERM while stdout is blocked finishes the line, then writes the STATE; if stdout stays blocked
past the deadline the run exits anyway and says the state was NOT emitted. A target that exits
early (``| true``, ``| head -n 2``) gets one line saying so, no traceback; exports the export
record holds stay for the rerun, the others are canceled (issue 18.5). A stderr nobody reads
does not hold the forced exit either. Real tap processes against the sandbox.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import typing as t

import pytest

from tests.helpers import discover, recorded_ids, select_streams
from tests.sandbox_runs import one_stream
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap, blocked_writing_a_pipe, until

if t.TYPE_CHECKING:
    import io
    from pathlib import Path

    from pardot_export_sandbox import Sandbox


F_SETPIPE_SZ = 1031  # Linux


def big(sandboxes) -> tuple[Sandbox, dict, dict]:
    sb = sandboxes(rows={"visitor_activity": 5_000}, rows_per_file=5_000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=365)
    return sb, cfg, cat


def test_sigterm_while_stdout_is_blocked_finishes_the_line_then_writes_state(sandboxes):
    """Nobody reads stdout for a while: the handler must not write into the middle of a line."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat)
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()  # the tap blocks in a write
    run, took = tap.term_and_wait(read_after=0.5)
    assert took < BOUND
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE", "the last line is the final STATE"
    assert sum(m["type"] == "RECORD" for m in messages) < 5_000, "the run was interrupted"
    assert "state emitted" in run.stderr


def test_stdout_never_read_the_log_does_not_claim_state(sandboxes):
    """stdout stays blocked past the deadline: exit anyway, and say the state was NOT emitted."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat, env={"TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "2"})
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()
    tap.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert tap.proc.wait(timeout=BOUND) == SIGTERM_EXIT  # nobody has read stdout meanwhile
    assert time.monotonic() - t0 < BOUND
    err = tap.stderr()
    assert tap.leftovers() == [], "the forced exit removes the run's downloaded files"
    tap.close()
    assert "state NOT emitted" in err
    assert "state emitted" not in err.replace("state NOT emitted", "")


def unfinished(sb) -> list[tuple[int, str]]:
    """The sandbox's exports Pardot would still work on (Waiting or Processing), with their state."""
    exports = sb.stats()["exports"].items()
    return [(eid, e["state"]) for eid, e in exports if e["state"] in ("Waiting", "Processing")]


@pytest.mark.parametrize("keep", [0, 2], ids=["true", "head-n-2"])
def test_a_target_that_exits_early_gets_one_line_and_no_unknown_export_is_left_queued(
    sandboxes, keep, record_dir, tmp_path
):
    """``| true`` and ``| head -n 2``: stdout closes while the tap writes (and exports wait in Pardot's queue).

    Exports the tap's record holds stay for the rerun; any other is canceled.
    """
    sb = sandboxes(rows={"list_membership": 3000, "prospect": 2000}, processing_seconds=0.3)
    config = sb.tap_config(window_days=60, max_queued_exports=2)
    catalog = select_streams(discover(config), ["list_membership", "prospect"])
    path = tap_files(config, catalog, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tap_pardot_export", "--config", path[0], "--catalog", path[1]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(keep):
        proc.stdout.readline()
    proc.stdout.close()  # the target is gone
    _, err_bytes = proc.communicate(timeout=BOUND * 3)
    err = err_bytes.decode()
    assert proc.returncode not in (0, None)
    assert err.count("The target stopped reading") == 1, err[-3000:]
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipeError" not in err, err[-3000:]
    recorded = recorded_ids(record_dir, sb)

    def unknown() -> list[tuple[int, str]]:
        return [(eid, state) for eid, state in unfinished(sb) if eid not in recorded]

    deadline = time.monotonic() + 10
    while unknown() and time.monotonic() < deadline:  # a cancel may still be landing
        time.sleep(0.1)
    assert unknown() == [], "an export was left in Pardot's queue, unknown to any state or record"
    canceled = {eid for eid, e in sb.stats()["exports"].items() if e["state"] == "Canceled"}
    assert not canceled & recorded, "an export the record holds was canceled"


def tap_files(config: dict, catalog: dict, folder: Path) -> tuple[str, str]:
    """The config and catalog files of a tap the test starts itself, in ``folder`` (the test's own)."""
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    return str(folder / "config.json"), str(folder / "catalog.json")


def test_a_signal_while_nobody_reads_stderr_still_ends_the_run(sandboxes, tmp_path):
    """The log's pipe is full and stays full: the forced exit must not wait to say why it exits.

    Once the sync began, the test stops reading the tap's stderr (a pipe of one page); the tap,
    polling an export Pardot keeps processing, logs each call until the pipe holds all it can
    and the tap blocks. Then SIGTERM: nothing the tap still wants to log can be written, so the
    exit comes at the (shortened) hard deadline, and it must come.
    """
    sb = sandboxes(processing_seconds=600)
    config, catalog = one_stream(sb, "list_membership", window_days=365)
    path = tap_files(config, catalog, tmp_path)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tap_pardot_export", "--config", path[0], "--catalog", path[1]],
        stdout=subprocess.DEVNULL,
        stderr=write_end,
        env={**os.environ, "TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "2"},
    )
    os.close(write_end)
    try:
        with open(read_end, "rb", buffering=0) as err:
            seen = b""
            while b"created export" not in seen:  # the sync began: the tap's own handlers are in place
                chunk = err.read(4096)
                assert chunk, seen.decode()[-3000:]
                seen += chunk
            until(lambda: blocked_writing_a_pipe(proc.pid), "the tap filled its stderr and blocked")
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the tap is alive {BOUND:.0f}s after SIGTERM: stderr holds its exit") from None
            assert code == SIGTERM_EXIT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_signal_then_the_target_gone_still_ends_as_the_signal_asked(sandboxes):
    """SIGTERM while the tap is blocked writing to stdout, then the target exits without reading more.

    Found by an adversarial run: the failed write ended the run as an ordinary failure (exit 1),
    and the log never said the signal came or that the state was not emitted.
    """
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat)
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()
    tap.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert tap.proc.stdout is not None
    tap.proc.stdout.close()  # the target died
    assert tap.proc.wait(timeout=BOUND) == SIGTERM_EXIT, tap.stderr()[-2000:]
    err = tap.stderr()
    assert "Interrupted by signal 15" in err and "state NOT emitted" in err, err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_a_stdout_that_takes_nothing_is_one_clear_error(sandboxes, stdout, tmp_path):
    """stdout on a full disk (ENOSPC, not a broken pipe), or not open at all (``>&-``).

    Found by an adversarial run: a ``BufferError`` traceback (the failed write's view of the
    writer's buffer outlived it), and an ``AttributeError`` on ``sys.stdout`` being None.
    """
    sb = sandboxes()
    config, catalog = one_stream(sb, "list_membership")
    path = tap_files(config, catalog, tmp_path)
    command = [sys.executable, "-m", "tap_pardot_export", "--config", path[0], "--catalog", path[1]]
    with open(tmp_path / "stderr", "wb") as err:
        if stdout == "closed":
            shell = 'exec "$@" >&-'
            run = subprocess.run(["/bin/sh", "-c", shell, "sh", *command], stderr=err, timeout=BOUND * 3, check=False)
        else:
            with open(stdout, "wb") as full:
                run = subprocess.run(command, stdout=full, stderr=err, timeout=BOUND * 3, check=False)
    text = (tmp_path / "stderr").read_text()
    assert run.returncode == 1, text[-2000:]
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]
    said = "stdout could not be written (No space left on device)" if stdout == "/dev/full" else "stdout is not open"
    assert said in text, text[-2000:]


def test_a_slow_target_gets_the_state_soon_after_a_signal(sandboxes):
    """A target reading about 10 KB/s: after SIGTERM the tap writes one more slice of lines, then the STATE.

    Found by an adversarial run: the signal waited for the whole write in progress (up to 1,000
    records, here about 300 KB), so such a target met the hard deadline first: the last line was
    cut and the state NOT emitted.
    """
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat, env={"TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "10"})
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()  # the tap is in the middle of a write of many records
    stdout = t.cast("io.BufferedReader", tap.proc.stdout)  # read1: what the reader buffered first
    got: list[bytes] = []

    def slowly() -> None:
        while chunk := stdout.read1(512):
            got.append(chunk)
            time.sleep(0.05)

    reader = threading.Thread(target=slowly, daemon=True)
    reader.start()
    time.sleep(0.5)
    tap.proc.send_signal(signal.SIGTERM)
    assert tap.proc.wait(timeout=BOUND) == SIGTERM_EXIT
    reader.join(BOUND)
    err = tap.stderr()
    lines = (tap.out + b"".join(got)).decode().splitlines()
    assert "state emitted" in err and "state NOT emitted" not in err, err[-2000:]
    assert json.loads(lines[-1])["type"] == "STATE", lines[-1][:300]
    assert all(json.loads(line) for line in lines), "every line is whole"
