"""A window of a stream wider than an export: its field groups read into the spool, then joined by id.

The window's group exports are read one at a time (the next created, if it was not created
ahead), each group's typed rows spooled to disk (:class:`~tap_pardot_export.engine.join.JoinSpool`),
then the joined records are handed over as one part, and what the join did is logged.
"""

from __future__ import annotations

import time
import typing as t

from tap_pardot_export.engine.join import JoinedRows, JoinSpool

if t.TYPE_CHECKING:
    from tap_pardot_export.engine.join import JoinStats
    from tap_pardot_export.engine.plan import FileRowsLike
    from tap_pardot_export.engine.sync import StreamSync


def read_joined(sync: StreamSync, groups: int) -> t.Generator[FileRowsLike, None, int]:
    """Spool the head window's field groups one export at a time, then yield their records joined by id."""
    plan, session = sync.plan, sync.session
    with JoinSpool(plan.stream, groups, replication_key=plan.bookmark_key, under=session.spool_dir) as spool:
        for k in range(groups):
            with session.client.budget.exempt():
                sync.fill(ahead=False, need=k + 1)  # the window's next group, if not created ahead
            slot = sync.slots[k]
            export_id = slot.info.id
            for part in sync.read_export(slot):
                if slot.info.id != export_id:  # created again (it expired while read): its files come anew
                    spool.reset(k)
                    export_id = slot.info.id
                spool.add(k, t.cast("t.Any", part))
            session.queue.in_flight.discard(slot.info.id)  # done in Pardot; kept in state until joined
        joined = JoinedRows(plan.stream, spool)
        t0 = time.monotonic()
        yield joined
        spool.stats.join_seconds = time.monotonic() - t0
        spool.stats.spool_bytes = spool.size()
    report_join(sync, spool.stats, groups)
    return joined.count


def report_join(sync: StreamSync, stats: JoinStats, groups: int) -> None:
    """Log what a window's join did, and warn of records some group lacked."""
    logger, plan = sync.stream.logger, sync.plan
    label = sync.slots[0].job.spec.label.rsplit(" field group", 1)[0]
    procedure = plan.procedure.name
    logger.info(
        "%s: joined %d record(s) from %d field groups: spooled in %.1fs, joined and emitted in %.1fs "
        "(%.0f records/s), %.1f MiB of disk spool",
        label,
        stats.rows,
        groups,
        stats.spool_seconds,
        stats.join_seconds,
        stats.rows / stats.join_seconds if stats.join_seconds > 0 else 0.0,
        stats.spool_bytes / 2**20,
    )
    if procedure == "filter_by_updated_at":
        again = "an updated record comes whole with the next run"
    else:  # the window filters on a time an update does not move: the record is not exported again
        again = (
            f"{procedure} does not export them again after an update: a sync with filter_by_updated_at "
            "(or a full resync) brings them whole"
        )
    if stats.partial:
        logger.warning(
            "%s: %d record(s) were in some field groups' exports but not in others (e.g. id %s): updated or "
            "deleted in Pardot while the window's exports ran. They were emitted with the fields known; %s.",
            label,
            stats.partial,
            ", ".join(map(str, stats.partial_ids)),
            again,
        )
    if stats.mixed:
        logger.warning(
            "%s: %d record(s) had different %s values in different field groups' exports (Pardot answered "
            "them from different versions): each was emitted with the oldest, its fields from both versions; %s.",
            label,
            stats.mixed,
            plan.bookmark_key,
            again if procedure != "filter_by_updated_at" else "it comes whole again when next updated",
        )
