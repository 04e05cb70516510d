"""The database handles the command shells hold: the store itself (opened by a shell and
passed to every stage) and the views of it that commands list and change directly (the
outbox, the feedback log, the daemon's state, checkpoints during a large ingest, finding a
paper by its title). The shells take them from here, so the app layer depends on the
pipeline and base only."""

from __future__ import annotations

from recommender.store import Store
from recommender.store.channel_posts import ChannelPosts
from recommender.store.checkpoints import BackgroundCheckpoints
from recommender.store.daemon_lock import DaemonLock, DaemonRunning
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox, new_owner
from recommender.store.schedule import NewSchedule, ReaderSchedule, Settled
from recommender.store.state import DaemonState
from recommender.store.title_match import paper_by_title

__all__ = ["BackgroundCheckpoints", "ChannelPosts", "DaemonLock", "DaemonRunning", "DaemonState", "FeedbackLog", "NewSchedule", "Outbox",
           "ReaderSchedule", "Settled", "Store", "new_owner", "paper_by_title"]
