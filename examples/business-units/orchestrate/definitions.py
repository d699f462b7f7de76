"""Dagster definitions: the Pardot business units of a Meltano project, synced side by side.

One op per business unit, each running ``meltano run`` for it in the Meltano project: its own
process, its own state in Meltano's state backend. The ops do not depend on each other, so the
multiprocess executor runs them at once, and one that fails leaves the others running (the
run then fails, naming it). A schedule starts the job, skipping a tick while the job's previous
run is still going.

- The project: the folder ``MELTANO_PROJECT_ROOT`` names (default: the folder above this file).
- Its business units: the extractors of its ``meltano.yml`` named ``tap-pardot-export--<name>``
  (those of files under ``include_paths`` are not read).
- What runs for each: ``meltano run <job>`` for the project's job whose tasks name that
  extractor and no other business unit's, else ``meltano run <extractor> <loader>``, the loader
  ``MELTANO_LOADER`` names (default: the project's only loader).
- ``meltano``: the one ``MELTANO_BIN`` names, else the one on ``PATH``, else the one beside this
  Python.
- The schedule's cron: ``PARDOT_SYNC_CRON`` (default hourly, ``0 * * * *``, UTC).

Run it (docs/scale.md)::

    MELTANO_PROJECT_ROOT=/path/to/project dagster dev -f examples/business-units/orchestrate/definitions.py
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import yaml
from dagster import (
    DagsterRunStatus,
    Definitions,
    Failure,
    JobDefinition,
    OpDefinition,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    job,
    multiprocess_executor,
    op,
    schedule,
)

PREFIX = "tap-pardot-export--"
#: how long a stopped run's ``meltano run`` may take to stop (the tap's bounded stop keeps its
#: exports for the rerun) before it is killed
STOP_SECONDS = 120


@dataclass(frozen=True)
class BusinessUnit:
    """One business unit of the project: its extractor and the ``meltano`` arguments that sync it."""

    name: str
    extractor: str
    command: tuple[str, ...]

    @property
    def op_name(self) -> str:
        """A Dagster name for its op (letters, digits and underscores)."""
        return "sync_" + re.sub(r"\W", "_", self.name)


def project_root() -> Path:
    """The Meltano project: ``MELTANO_PROJECT_ROOT``, else the folder above this file."""
    return Path(os.environ.get("MELTANO_PROJECT_ROOT") or Path(__file__).resolve().parent.parent)


def meltano_program() -> str:
    """The ``meltano`` executable: ``MELTANO_BIN``, else on ``PATH``, else beside this Python."""
    found = os.environ.get("MELTANO_BIN") or shutil.which("meltano")
    if found is None:
        found = shutil.which("meltano", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("meltano not found: install it, put it on PATH or set MELTANO_BIN")
    return found


def _task_names(tasks: t.Any) -> set[str]:
    """Every plugin or job name a Meltano job's tasks mention (a task is a string or a list of them)."""
    words: set[str] = set()
    for task in tasks if isinstance(tasks, list) else [tasks]:
        for part in task if isinstance(task, list) else [task]:
            words.update(str(part).split())
    return words


def business_units(project: Path, loader: str | None = None) -> list[BusinessUnit]:
    """The business units of the project's ``meltano.yml``, in its order, each with what syncs it."""
    data = yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8")) or {}
    plugins = data.get("plugins") or {}
    extractors = [p["name"] for p in plugins.get("extractors") or [] if str(p.get("name", "")).startswith(PREFIX)]
    jobs = data.get("jobs") or []
    loaders = [p["name"] for p in plugins.get("loaders") or []]
    units = []
    for extractor in extractors:
        # a job of this business unit alone: one that also runs another would sync that one twice
        named = [j["name"] for j in jobs if _task_names(j.get("tasks")) & set(extractors) == {extractor}]
        if named:
            command: tuple[str, ...] = ("run", named[0])
        else:
            chosen = loader or os.environ.get("MELTANO_LOADER") or (loaders[0] if len(loaders) == 1 else None)
            if chosen is None:
                raise ValueError(
                    f"{extractor}: no job of {project / 'meltano.yml'} runs it and the project has "
                    f"{len(loaders)} loaders: add a job, or name the loader in MELTANO_LOADER"
                )
            command = ("run", extractor, chosen)
        units.append(BusinessUnit(extractor.removeprefix(PREFIX), extractor, command))
    return units


def run_meltano(context: OpExecutionContext, project: Path, arguments: t.Sequence[str]) -> None:
    """Run ``meltano <arguments>`` in the project, its output in the op's log; a failure names its exit code.

    A stopped Dagster run stops it as Ctrl-C would (SIGTERM to its process group: meltano, the tap
    and the loader), so the tap keeps its exports for the rerun; it is killed after STOP_SECONDS.
    """
    argv = [meltano_program(), *arguments]
    context.log.info("%s in %s", " ".join(argv), project)
    last: collections.deque[str] = collections.deque(maxlen=30)
    proc = subprocess.Popen(  # noqa: S603 (the project's own meltano, with arguments from its meltano.yml)
        argv,
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout or ():
            last.append(line.rstrip())
            context.log.info(line.rstrip())
        proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.poll() is None:  # the op was interrupted: stop meltano as Ctrl-C would
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        raise Failure(
            description=f"meltano {' '.join(arguments)} exited {proc.returncode}",
            metadata={"last lines": "\n".join(last)},
        )


def business_unit_op(unit: BusinessUnit, project: Path) -> OpDefinition:
    """The op that syncs one business unit."""

    @op(
        name=unit.op_name,
        description=f"meltano {' '.join(unit.command)}: business unit {unit.name} ({unit.extractor})",
        tags={"business_unit": unit.name},
    )
    def sync(context: OpExecutionContext) -> None:
        run_meltano(context, project, unit.command)

    return sync


def build_job(project: Path) -> JobDefinition:
    """One job, one op per business unit, none waiting on another: all run at once."""
    units = business_units(project)
    ops = [business_unit_op(unit, project) for unit in units]

    @job(
        name="pardot_business_units",
        description=f"Sync every Pardot business unit of {project} side by side, each with its own state",
        # every business unit at once: each waits on Pardot, not on this machine's CPU
        executor_def=multiprocess_executor.configured({"max_concurrent": max(1, len(units))}),
    )
    def pardot_business_units() -> None:
        for sync in ops:
            sync()

    return pardot_business_units


PROJECT = project_root()
business_units_job = build_job(PROJECT)


@schedule(
    job=business_units_job,
    cron_schedule=os.environ.get("PARDOT_SYNC_CRON", "0 * * * *"),
    execution_timezone="UTC",
)
def business_units_schedule(context: ScheduleEvaluationContext) -> SkipReason | RunRequest:
    """Start the job, unless its previous run is still going (its business units would sync twice at once)."""
    going = context.instance.get_runs(
        filters=RunsFilter(
            job_name=business_units_job.name,
            statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED],
        ),
        limit=1,
    )
    if going:
        return SkipReason(f"run {going[0].run_id} of {business_units_job.name} is still going")
    return RunRequest()


defs = Definitions(jobs=[business_units_job], schedules=[business_units_schedule])
