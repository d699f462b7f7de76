"""Every command the README shows runs, as written (issue 19.6).

The README's code blocks are read from the README itself: each ``bash`` block follows a
``<!-- readme-test: NAME -->`` marker, and a runner here runs its commands one by one in bash, in
a folder of the test's own (the user's Meltano project, with the README's ``config.json``), so an
edit that breaks a command breaks this test. What differs from a user's machine, and only that:

- install steps use the programs already installed in this environment (as
  ``tests/meltano/test_meltano_add.py`` does): ``pip install -e .`` is skipped, the plugins' ``pip_url``
  becomes an ``executable`` before ``meltano install`` (which then installs nothing), and
  ``scripts/setup`` is the one this environment already ran;
- the account is the sandbox: its hosts (``TAP_PARDOT_EXPORT_API_URL``/``LOGIN_URL``, and in
  ``config.json``), its credentials for the ``YOUR_*`` placeholders, and the fast polling allowed
  on loopback; ``/path/to/tap-pardot-export`` is this checkout;
- the loader ``target-jsonl`` is the tests' JSON Lines target (``tests/jsonl_target.py``), the
  loader "your project already has".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, make_sandbox
from tests.meltano_helpers import MELTANO, TAP, needs_meltano

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"
MARKER = re.compile(r"<!--\s*readme-test:\s*([\w.-]+)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


def readme_blocks() -> list[tuple[str | None, str, str]]:
    """Every fenced block of the README: (its marker's name or None, its language, its text)."""
    out: list[tuple[str | None, str, str]] = []
    lines = README.read_text().splitlines()
    k = 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if m is None:
            k += 1
            continue
        end = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
        before = [line for line in lines[max(0, k - 3) : k] if line.strip()]
        marker = MARKER.search(before[-1]) if before else None
        out.append((marker.group(1) if marker else None, m.group(1), "\n".join(lines[k + 1 : end])))
        k = end + 1
    return out


def block(name: str) -> str:
    found = [text for marker, _, text in readme_blocks() if marker == name]
    assert len(found) == 1, f"the README has {len(found)} block(s) marked readme-test: {name}"
    return found[0]


def commands(text: str) -> list[str]:
    """A bash block's commands: continuation lines joined, blank and comment-only lines left out."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


#: the README's bash blocks, each run by a test of this module
RUN = ("quickstart", "meltano-project", "singer", "check", "queue")


def test_every_command_block_of_the_readme_is_run_here():
    blocks = readme_blocks()
    shell = [(marker, text[:60]) for marker, lang, text in blocks if lang in ("bash", "sh", "shell", "console")]
    assert shell, "no bash block found: the README's fences changed"
    unmarked = [text for marker, text in shell if marker is None]
    assert not unmarked, f"a bash block of the README has no readme-test marker: {unmarked}"
    assert sorted(marker for marker, _ in shell if marker is not None) == sorted(RUN)


def test_the_loaders_section_pins_what_the_tests_load_with():
    loaders = yaml.safe_load(block("loaders.yml"))["plugins"]["loaders"]
    pins = {entry["name"]: entry["pip_url"] for entry in loaders}
    pyproject = (ROOT / "pyproject.toml").read_text()
    group = re.search(r"^loaders = \[(.*)\]$", pyproject, re.MULTILINE)
    assert group is not None
    assert f'"{pins["target-postgres"]}"' in group.group(1)
    assert "duckdb<1.2" in pins["target-duckdb"]


# -- running the blocks ----------------------------------------------------------------------


class Shell:
    """Runs README commands in bash in one folder, as a user's shell would, with the sandbox as the account."""

    def __init__(self, folder: Path, sb: Sandbox | None) -> None:
        self.folder = folder
        shims = folder / ".shims"
        shims.mkdir()
        target = shims / "target-jsonl"  # the loader the user's project already has
        program = f'"{sys.executable}" "{ROOT / "tests" / "jsonl_target.py"}"'
        target.write_text(
            "#!/bin/sh\n"
            f'case " $* " in *" --config "*) exec {program} "$@";; esac\n'
            'printf \'{"destination_path": "output"}\' > .target-jsonl.json\n'
            f'exec {program} --config .target-jsonl.json "$@"\n'
        )
        target.chmod(0o755)
        self.target = target
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_PARDOT_EXPORT_", "MELTANO_"))}
        env |= {
            "PATH": f"{shims}:{BIN}:{env.get('PATH', '')}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_DATABASE_URI": f"sqlite:///{folder}/.meltano/meltano.db",
            "PIP_NO_INDEX": "1",
            "UV_OFFLINE": "1",
            "XDG_STATE_HOME": str(folder / ".state"),
        }
        self.env = env
        self.substitutions = {"/path/to/tap-pardot-export": str(ROOT)}
        if sb is not None:
            self.sb = sb
            env |= {"TAP_PARDOT_EXPORT_API_URL": sb.base_url, "TAP_PARDOT_EXPORT_LOGIN_URL": sb.base_url}
            self.substitutions |= {
                "YOUR_CLIENT_ID": sb.config.client_id,
                "YOUR_CLIENT_SECRET": sb.config.client_secret,
                "YOUR_REFRESH_TOKEN": sb.config.refresh_token,
            }

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        for placeholder, value in self.substitutions.items():
            command = command.replace(placeholder, value)
        proc = subprocess.run(
            [BASH, "-c", f"set -eo pipefail; {command}"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"README command failed: {command}\n{text[-3000:]}"
        assert "Traceback" not in text, f"{command}\n{text[-3000:]}"
        assert "sandbox-client-secret" not in text, command
        return proc

    def write_config(self) -> None:
        """The README's config.json, with the sandbox's hosts and credentials and loopback polling."""
        config = json.loads(block("config.json"))
        assert set(config) == {
            "business_unit_id",
            "client_id",
            "client_secret",
            "refresh_token",
            "start_date",
            "timezone",
        }
        cfg = self.sb.config
        config |= {"client_id": cfg.client_id, "client_secret": cfg.client_secret, "refresh_token": cfg.refresh_token}
        config |= {"api_url": self.sb.base_url, "login_url": self.sb.base_url, "poll_interval": 0.05}
        config["max_poll_interval"] = 0.2
        (self.folder / "config.json").write_text(json.dumps(config))

    def project(self) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", yaml.safe_load((self.folder / "meltano.yml").read_text()))

    def save(self, data: dict[str, t.Any]) -> None:
        (self.folder / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def _installed(shell: Shell, command: str) -> None:
    """An install step: the plugin runs the program already installed (its pip_url becomes an executable)."""
    data = shell.project()
    ext = next(p for p in data["plugins"]["extractors"] if p["name"] == "tap-pardot-export")
    assert ext["pip_url"] == str(ROOT), "the README's sed line did not point pip_url at the checkout"
    del ext["pip_url"]
    ext["executable"] = TAP
    ext.setdefault("config", {}).update(poll_interval=0.05, max_poll_interval=0.2)  # loopback polling
    shell.save(data)
    shell.run(command)  # installs nothing now: the plugin has no pip_url


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Shell]:
    """The user's Meltano project (with a loader, target-jsonl) and the README's config.json; the sandbox as account."""
    if MELTANO is None or TAP is None:
        pytest.skip("meltano and the tap's script come with the dev extra (scripts/setup)")
    folder = tmp_path_factory.mktemp("readme")
    with make_sandbox(rows_per_file=500) as sb:
        shell = Shell(folder, sb)
        loader = {
            "name": "target-jsonl",
            "namespace": "target_jsonl",
            "executable": str(shell.target),
            "settings": [{"name": "destination_path"}],
            "config": {"destination_path": "output"},
        }
        shell.save(
            {
                "project_id": "readme-user-project",
                "default_environment": "dev",
                "environments": [{"name": "dev"}],
                "send_anonymous_usage_stats": False,
                "plugins": {"loaders": [loader]},
            }
        )
        shell.write_config()
        yield shell


@needs_meltano
def test_the_readme_commands_run_as_written(workspace):
    """The Meltano project block, then the plain tap, the check and the queue's blocks, in the README's order."""
    shell = workspace
    for command in commands(block("meltano-project")):
        if command.startswith("cd your-meltano-project"):
            continue  # the shell is in the project's folder
        if command.startswith("meltano install"):
            _installed(shell, command)
            continue
        proc = shell.run(command)
        if command.startswith("meltano invoke tap-pardot-export --discover"):
            assert "the extractor runs" in proc.stdout
    config = shell.project()["plugins"]["extractors"][0]["config"]
    assert config["flattening_enabled"] is True
    assert config["stream_maps"] == {"prospect": {"email": "__NULL__"}}
    written = {p.stem for p in (shell.folder / "output").glob("*.jsonl")}
    assert written == set(SPECS)
    assert all(
        "email" not in json.loads(line)
        for line in (shell.folder / "output" / "prospect.jsonl").read_text().splitlines()
    )
    _singer_block(shell)
    report = "".join(shell.run(c).stdout for c in commands(block("check")))
    assert report.count("Result: all checks passed") == 2
    _queue_block(shell)


def _singer_block(shell: Shell) -> None:
    for command in commands(block("singer")):
        if command.startswith("pip install"):
            continue  # an install step: the tap is installed in this environment
        if "--state state.json" in command:  # what the user's target kept from the first run
            states = [
                m
                for m in map(json.loads, (shell.folder / "messages.jsonl").read_text().splitlines())
                if m["type"] == "STATE"
            ]
            (shell.folder / "state.json").write_text(json.dumps(states[-1]["value"]))
        proc = shell.run(command)
        if "--about" in command:
            assert "| Setting |" in proc.stdout
    catalog = json.loads((shell.folder / "catalog.json").read_text())
    assert sorted(s["tap_stream_id"] for s in catalog["streams"]) == sorted(SPECS)
    messages = [json.loads(line) for line in (shell.folder / "messages.jsonl").read_text().splitlines()]
    assert {m["stream"] for m in messages if m["type"] == "RECORD"} == set(SPECS)


def _queue_block(shell: Shell) -> None:
    """The queue's example ids, 1021 and 1022, stand for two other users' exports waiting in the sandbox's queue."""
    first, second = shell.sb.add_foreign_exports(2)
    shell.substitutions |= {"1021": str(first), "1022": str(second)}
    outputs = [shell.run(c).stdout for c in commands(block("queue"))]
    assert str(first) in outputs[0] and str(second) in outputs[0]
    assert shell.sb.stats()["exports"][first]["state"] == "Canceled"
    assert "nothing to cancel: it is Canceled" in outputs[-1]


@pytest.mark.end_to_end
def test_the_quickstart_runs_as_written(tmp_path):
    """``scripts/quickstart`` in a copy of the checkout whose plugins run the installed programs."""
    if MELTANO is None or TAP is None:
        pytest.skip("meltano and the tap's script come with the dev extra (scripts/setup)")
    quick = [c for c in commands(block("quickstart")) if c.split()[0] == "scripts/quickstart"]
    assert len(quick) == 1
    shell = Shell(tmp_path, None)  # its shims and environment; the quickstart starts its own sandbox
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "quickstart", tmp_path / "scripts" / "quickstart")
    (tmp_path / "scripts" / "setup").write_text("#!/bin/sh\n# the install step: this environment is set up\n")
    (tmp_path / "scripts" / "setup").chmod(0o755)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    data = yaml.safe_load((ROOT / "meltano.yml").read_text())
    for kind, program in (("extractors", TAP), ("loaders", str(shell.target))):
        plugin = data["plugins"][kind][0]
        del plugin["pip_url"]
        plugin["executable"] = program
    shell.save(data)
    proc = shell.run(quick[0].split("#")[0])
    assert "==> What target-jsonl wrote (rows per stream):" in proc.stdout
    for stream in STREAMS:
        assert f"output/{stream}.jsonl" in proc.stdout
    assert "20000 output/visitor_activity.jsonl" in proc.stdout
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()  # the README's other command is CI's own


def test_ci_runs_the_readmes_test_command_and_the_end_to_end_tier():
    """The README's `scripts/test` leaves the end-to-end tier out; CI runs both, so every test runs in CI."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "scripts/test" in lines
    assert "scripts/test -m end_to_end" in lines
    assert "scripts/test -m end_to_end" in README.read_text()
