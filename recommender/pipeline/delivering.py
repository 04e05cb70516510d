"""Delivering stored digests: claimed in batches under a lease, each message rendered from
what the digest is (entries, Message-ID, date) as it is sent, or sent as stored (digests
stored before), and each outcome recorded before the connection sends its next message.
A forked child can deliver while its parent ranks and renders the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from recommender.base import parallel
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, UserConfig
from recommender.base.link_signing import LinkSigner, check_secret
from recommender.delivery.smtp import (
    DeliveryAborted,
    Outcome,
    Outgoing,
    SmtpSender,
    settings_fingerprint,
)
from recommender.digest.stored import message_for, stored_picks
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.store import Store
from recommender.store.group_commit import GroupCommit
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import Claimed, Outbox, Readers

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=10)


class Waitable(Protocol):
    """A threading or multiprocessing Event."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def signer_for(config: Config, clock: Clock) -> LinkSigner:
    return LinkSigner(check_secret(config.feedback.secret, config.feedback.secret_env), clock)


@dataclass(frozen=True)
class DigestWork:
    """What building and delivering digests work with: the settings, the database, the clock."""

    config: Config
    store: Store
    clock: Clock = system_clock

    def signer(self) -> LinkSigner:
        return signer_for(self.config, self.clock)


@dataclass(frozen=True)
class Claiming:
    """How a delivery claims pending digests: as ``owner`` (default: a new one), ``batch_size``
    at a time under ``lease``; until ``stop`` is set; with ``more`` (set once another process
    has queued everything), an empty outbox is polled every ``poll_seconds`` until it is set."""

    owner: str | None = None
    batch_size: int = 50
    lease: timedelta = LEASE
    stop: threading.Event | _ParentGone | None = None
    more: Waitable | None = None
    poll_seconds: float = 0.2
    most: int | None = None  # claim at most this many, then return (a worker's turn: its memory stays flat)
    dead: Sequence[str] | None = None  # the caller's housekeeping's dead lease holders (else housekept here)


class _Renderer:
    """Claimed digests' messages: stored (digests stored before messages were rendered at send
    time), or rendered from their entries, papers and date: the same bytes at every attempt."""

    def __init__(self, work: DigestWork):
        self.work = work
        self._signer: LinkSigner | None = None
        self._directory: ReaderDirectory | None = None

    def users(self, claimed: Sequence[Claimed]) -> dict[int, UserConfig]:
        """The readers' settings (``ReaderDirectory``), else the defaults to this address (no
        longer configured: a digest already queued is still sent)."""
        self._directory = self._directory or ReaderDirectory(self.work.config, self.work.store)
        found = self._directory.of([(c.user_id, c.email) for c in claimed])
        return {c.user_id: found.get(c.user_id) or UserConfig(c.email) for c in claimed}

    def messages(self, claimed: Sequence[Claimed]) -> list[bytes]:
        to_render = [c for c in claimed if c.message is None]
        rendered: dict[int, bytes] = {}
        if to_render:
            outbox, store = Outbox(self.work.store), self.work.store
            entries = outbox.stored_entries([c.id for c in to_render])
            papers = {p.id: p for p in store.papers(sorted({e.paper_id for es in entries.values() for e in es}))}
            signer = self._signer = self._signer or self.work.signer()
            users = self.users(to_render)
            for c in to_render:
                user = users[c.user_id]
                dated = c.dated_at or self.work.clock()
                rendered[c.id] = message_for(self.work.config, signer, user, c.user_id, c.id, c.message_id,
                                             stored_picks(user, entries.get(c.id, []), papers), dated)
        return [c.message if c.message is not None else rendered[c.id] for c in claimed]


def message_of(work: DigestWork, digest_id: int) -> bytes:
    """A stored digest's message as it is sent (before any DKIM signature)."""
    claimed = Outbox(work.store).rendering(digest_id)
    if claimed is None:
        raise KeyError(digest_id)
    return _Renderer(work).messages([claimed])[0]


def deliver_pending(work: DigestWork, user_ids: Readers | None = None,
                    claiming: Claiming | None = None) -> list[Outcome]:
    """Send every due pending digest (older ones first), recording each outcome as it comes
    (see ``Claiming`` for how). The connections stay open from one claimed batch to the next,
    and the next is claimed (and its messages rendered) while they send the last messages of
    this one."""
    config, store, clock = work.config, work.store, work.clock
    claiming = claiming or Claiming()
    stop, more = claiming.stop, claiming.more
    outbox = Outbox(store)
    owner = claiming.owner or new_owner()
    renderer = _Renderer(work)
    sender = SmtpSender(config.smtp)
    outcomes: list[Outcome] = []
    smtp_settings = settings_fingerprint(config.smtp)
    made_due = outbox.retry_if_settings_changed(smtp_settings)
    if made_due:
        log.info("the SMTP settings changed: %d deferred digest(s) are tried now", made_due)

    def write(batch: Sequence[Outcome]) -> list[None]:
        # Deferred ones wait smtp.retry_delay_seconds (a later run, or `outbox retry` at once),
        # unless the SMTP settings change before.
        outbox.record_outcomes(batch, clock() + timedelta(seconds=config.smtp.retry_delay_seconds), smtp_settings)
        return [None] * len(batch)

    # Each connection waits until its outcome is stored before sending its next message (so a
    # crash re-sends only what was in flight), while the outcomes of all connections are
    # committed together.
    recorder: GroupCommit[Outcome, None] = GroupCommit(write)

    handled: set[int] = set()  # (kept as outcomes come: rebuilt at each claim it cost O(n^2) over a long run)

    async def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        handled.add(outcome.digest_id)
        await asyncio.wrap_future(recorder.enqueue(outcome))

    async def batches() -> AsyncIterator[list[Outgoing]]:
        claimed_so_far = 0
        while (stop is None or not stop.is_set()) and (claiming.most is None or claimed_so_far < claiming.most):
            final = more is None or more.is_set()  # read before the claim: nothing is queued after it is set
            claimed = await asyncio.to_thread(claim, handled)
            claimed_so_far += len(claimed)
            if claimed:
                yield claimed
            elif final:
                return
            else:
                await asyncio.to_thread(more.wait, claiming.poll_seconds)  # type: ignore[union-attr]  # (final when None)  # the connections stay open meanwhile

    # unsubscribes and dead senders' leases: once for the run's claims (or by the caller)
    dead = outbox.housekeep(clock()) if claiming.dead is None else claiming.dead

    def claim(handled: set[int]) -> list[Outgoing]:
        claimed = outbox.claim(owner, claiming.lease, claiming.batch_size, user_ids, now=clock(), dead=dead)
        again = [c.id for c in claimed if c.id in handled]
        if again:
            outbox.release(again)
        fresh = [c for c in claimed if c.id not in handled]
        return [Outgoing(c.id, c.email, message) for c, message in zip(fresh, renderer.messages(fresh), strict=True)]

    started = time.monotonic()
    try:
        asyncio.run(sender.send_stream(batches(), record))
    except DeliveryAborted:
        recorder.close()
        outbox.release_owner(owner)  # nothing was tried: the next run sends them
        raise
    finally:
        recorder.close()
    if outcomes:
        log.info("delivered %d digest(s) in %.1fs", sum(o.status == "sent" for o in outcomes),
                 time.monotonic() - started)
    return outcomes


class DeliveryProcess:
    """A forked child that delivers the digests already queued while the parent ranks and
    renders the rest, so both cores work instead of one phase after the other. It polls the
    outbox until told everything is queued, delivers what is left, and reports its outcomes.
    Whatever it leaves (it died, or was killed) the parent delivers: its leases free as soon as
    its process is gone. It stops when the parent is gone."""

    POLL_SECONDS = 0.2

    def __init__(self, work: DigestWork, user_ids: Readers):
        context = multiprocessing.get_context("fork")
        self._queued_all = context.Event()
        self._reports, reports = context.Pipe(duplex=False)
        self._process = context.Process(target=self._deliver, args=(work, user_ids, reports),
                                        name="digest-delivery", daemon=True)
        self._process.start()
        reports.close()

    def everything_queued(self) -> None:
        """The child delivers what is pending and then stops."""
        self._queued_all.set()

    def finish(self) -> list[Outcome]:
        """The child's outcomes once it is done (none if it died); ``DeliveryAborted`` if the
        server refused its login or certificate."""
        self._queued_all.set()
        report: list[Outcome] | str = []
        while True:
            if self._reports.poll(0.1):
                with contextlib.suppress(EOFError):  # it died without reporting: the parent delivers the rest
                    report = self._reports.recv()
                break
            if not self._process.is_alive() and not self._reports.poll(0):
                break
        self._process.join()
        self._reports.close()
        if isinstance(report, str):
            raise DeliveryAborted(report)
        return report

    def _deliver(self, work: DigestWork, user_ids: Readers,
                 reports: multiprocessing.connection.Connection) -> None:  # in the child
        parent_gone = _ParentGone(os.getppid())
        parallel.die_with_parent(parent_gone.parent)  # never sends on, unrecorded, after the command is gone
        outcomes: list[Outcome] | str = []
        try:
            with work.store.for_forked_child() as store:
                outcomes = deliver_pending(replace(work, store=store), user_ids, Claiming(
                    stop=parent_gone, more=self._queued_all, poll_seconds=self.POLL_SECONDS))
        except DeliveryAborted as exc:
            outcomes = exc.message
        finally:
            reports.send(outcomes)


class _ParentGone:
    """A stop flag that is set once the process that forked us has exited."""

    def __init__(self, parent: int):
        self.parent = parent

    def is_set(self) -> bool:
        return os.getppid() != self.parent
