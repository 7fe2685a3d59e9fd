"""Scores written to leads: on a form post (inside its transaction), by ``leadgate rescore``,
and by the daily refresh that keeps decay current.

A stored score is the score *as of* the lead's ``scored_at``. Engagement decays with time, so
each serving process runs :class:`Refresher`: a few minutes after a new UTC day begins, it
rescores every lead with engagement whose score is from an earlier day, in batches, so what
reps see and sort by reflects today's decay without anyone running a command. ``leadgate
rescore`` does the same for every lead whose rules version is not the current one (after the
rules changed), or for all with ``--all``. Both are safe to stop and run again: a lead done
is not stale any more, so a second run carries on where the first stopped.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from flask import Flask, current_app
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from capture.catalog import Catalog, get_catalog
from capture.db.models import Lead, RulesVersion, StageChange, Submission, utcnow
from capture.db.store import Store, get_store
from capture.fields import PROFILE_FIELDS
from capture.leads import stages
from capture.scoring.rules import NO_RULES, Rules, RulesError, load_rules
from capture.scoring.domains import domain_of
from capture.scoring.score import Reason, Request, Scored, fit_reasons, score_lead

EXTENSION = "leadgate.scoring"
BATCH = 2000
log = logging.getLogger(__name__)

#: What scoring reads of a lead row.
LEAD_COLUMNS = (Lead.id, Lead.email, *(getattr(Lead, f) for f in PROFILE_FIELDS), Lead.stage,
                Lead.score, Lead.mql_at)


@dataclass
class Scoring:
    """The rules in force and the catalog's resource types, for one app."""

    rules: Rules
    types: Mapping[str, str]
    #: The rules of this version are in ``rules_versions`` (checked once per process).
    stored: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, catalog: Catalog, rules: Rules) -> Scoring:
        return cls(rules, {r.id: r.type for r in catalog})

    @classmethod
    def unscored(cls) -> Scoring:
        """No rules: every score 0, nobody promoted."""
        return cls(NO_RULES, {})

    @property
    def threshold(self) -> int:
        return self.rules.mql_threshold

    def requests(self, rows: Iterable[Any]) -> list[Request]:
        """Engagement's input from submission rows (resource_id, created_at)."""
        return [Request(_get(r, "resource_id"), self.types.get(_get(r, "resource_id"), ""),
                        _get(r, "created_at")) for r in rows]

    def score(self, lead: Any, requests: Iterable[Request], now: datetime,
              fits: dict[tuple[str, ...], list[Reason]] | None = None) -> Scored:
        """``fits``: fit reasons by (industry, company size, job title, email domain), all
        fit depends on: filled and reused by a rescore, which meets the same ones often."""
        profile = {name: _get(lead, name) or "" for name in PROFILE_FIELDS}
        email = _get(lead, "email")
        fit = None
        if fits is not None:
            key = (profile["industry"], profile["company_size"], profile["job_title"], domain_of(email))
            fit = fits.get(key)
            if fit is None:
                fit = fits[key] = fit_reasons(profile, email, self.rules)
        return score_lead(profile, email, requests, self.rules, now, fit)

    def columns(self, lead: Any, requests: Iterable[Request], now: datetime,
                fits: dict[tuple[str, ...], list[Reason]] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The lead's new score columns, and its stage change when the score promotes it
        (stage columns then added to the first)."""
        scored = self.score(lead, requests, now, fits)
        columns = {"fit": scored.fit, "engagement": scored.engagement, "score": scored.score,
                   "score_reasons": scored.reasons_json(), "rules_version": scored.version,
                   "scored_at": now}
        stage = _get(lead, "stage") or "lead"
        move = stages.promotion(stage, scored.score, self.threshold)
        if move is None:
            return columns, None
        columns.update(stages.moved_columns(lead, move, now))
        return columns, stages.change_row(_get(lead, "id"), stage, move, stages.RULES, now)


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def load_scoring(catalog: Catalog) -> Scoring:
    """The rules of the catalog's content folder, checked against its settings."""
    settings = catalog.settings
    rules = load_rules(catalog.content_dir, resource_types=settings.resource_types,
                       industries=settings.industries, company_sizes=settings.company_sizes)
    return Scoring.of(catalog, rules)


def get_scoring(app: Flask | None = None) -> Scoring:
    """The current app's scoring, read with its catalog on first use."""
    app = app or current_app
    if EXTENSION not in app.extensions:
        with app.app_context():
            app.extensions[EXTENSION] = load_scoring(get_catalog())
    return app.extensions[EXTENSION]


def _insert(dialect: str) -> Any:
    return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]


def remember_rules(tx: Any, scoring: Scoring, dialect: str) -> None:
    """Keep this version's rules (once per process), so its scores can be replayed."""
    if scoring.stored or scoring.rules is NO_RULES:
        return
    tx.run(_insert(dialect)(RulesVersion.__table__).on_conflict_do_nothing(index_elements=["version"]),
           {"version": scoring.rules.version, "rules": scoring.rules.to_json(), "first_seen": utcnow()})


def stale(version: str, day_start: datetime) -> Any:
    """Leads whose stored score is not today's under these rules: another version, or
    engagement scored before today (fit alone does not decay)."""
    return or_(Lead.rules_version != version, Lead.scored_at.is_(None),
               and_(Lead.engagement > 0, Lead.scored_at < day_start))


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


@dataclass
class Rescored:
    scored: int = 0
    promoted: int = 0
    score_changed: int = 0


def count_stale(store: Store, scoring: Scoring, now: datetime, *, everyone: bool = False) -> int:
    with store.read() as s:
        stmt = select(func.count()).select_from(Lead)
        if not everyone:
            stmt = stmt.where(stale(scoring.rules.version, day_start(now)))
        return s.execute(stmt).scalar_one()


#: Fit reasons kept by a rescore, per (industry, company size, job title, email domain): leads
#: alike in those share their fit, however different their requests.
FIT_CACHE = 50_000


def rescore(store: Store, scoring: Scoring, *, now: datetime | None = None, everyone: bool = False,
            batch: int = BATCH, progress: Callable[[int], None] | None = None,
            stop: threading.Event | None = None) -> Rescored:
    """Rescore leads in batches of ``batch``, one transaction each: those :func:`stale` (or
    every lead with ``everyone``, leads scored since this run began excepted, so a second run
    carries on). ``progress`` is told how many leads each batch did.

    A batch is three statements (its leads, their posts, one executemany of the new scores)
    and per lead only the scoring itself: fit is worked out once per (industry, company size,
    job title, email domain), and the posts become engagement's input as they are read.
    """
    now = now or utcnow()
    report = Rescored()
    leads = Lead.__table__
    selection = (or_(Lead.scored_at.is_(None), Lead.scored_at < now) if everyone
                 else stale(scoring.rules.version, day_start(now)))
    pick = select(*LEAD_COLUMNS).where(selection, Lead.id > bindparam("after")).order_by(Lead.id).limit(batch)
    if store.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    posts = (select(Submission.lead_id, Submission.resource_id, Submission.created_at)
             .where(Submission.lead_id.between(bindparam("low"), bindparam("high"))))
    write_scores = update(leads).where(leads.c.id == bindparam("lead_id"))
    add_changes = _insert(store.dialect)(StageChange.__table__)
    types = scoring.types
    fits: dict[tuple[str, ...], list[Reason]] = {}
    after = 0
    while stop is None or not stop.is_set():
        with store.writes(direct=False) as tx:
            remember_rules(tx, scoring, store.dialect)
            rows = tx.rows(pick, {"after": after})
            if not rows:
                break
            by_lead: dict[int, list[Request]] = defaultdict(list)
            for post in tx.rows(posts, {"low": rows[0]["id"], "high": rows[-1]["id"]}):
                resource_id = post["resource_id"]
                by_lead[post["lead_id"]].append(
                    Request(resource_id, types.get(resource_id, ""), post["created_at"]))
            plain, promoted, changes = [], [], []
            if len(fits) > FIT_CACHE:
                fits.clear()
            for lead in rows:
                columns, change = scoring.columns(lead, by_lead[lead["id"]], now, fits)
                report.score_changed += columns["score"] != lead["score"]
                (promoted if change else plain).append({"lead_id": lead["id"], **columns})
                if change:
                    changes.append(change)
            if plain:
                tx.run(write_scores, plain)
            for row in promoted:  # rare: their columns differ from lead to lead
                tx.run(write_scores, row)
            if changes:
                tx.run(add_changes, changes)
        scoring.stored = True
        after = rows[-1]["id"]
        report.scored += len(rows)
        report.promoted += len(changes)
        if progress is not None:
            progress(len(rows))
    return report


def replay(store: Store, lead_id: int, version: str | None = None, as_of: datetime | None = None) -> Scored:
    """A lead's score recomputed from its stored posts under a stored rules version (the one
    that scored it by default), as of a time (its ``scored_at`` by default). LookupError
    when the lead or the version is not there."""
    with store.read() as s:
        lead = s.execute(select(*LEAD_COLUMNS, Lead.rules_version, Lead.scored_at)
                         .where(Lead.id == lead_id)).one_or_none()
        if lead is None:
            raise LookupError(f"no lead {lead_id}")
        version = version or lead.rules_version
        stored = s.get(RulesVersion, version)
        if stored is None:
            raise LookupError(f"no stored rules of version {version!r}")
        posts = s.execute(select(Submission.resource_id, Submission.created_at)
                          .where(Submission.lead_id == lead_id)).all()
    scoring = Scoring(Rules.from_json(stored.rules), get_scoring().types)
    return scoring.score(lead, scoring.requests(posts), as_of or lead.scored_at or utcnow())


class Refresher:
    """Each serving process's thread that brings yesterday's scores to today's decay."""

    def __init__(self, app: Flask, every_seconds: float):
        self.app = app
        self.every = every_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None

    def start(self) -> None:
        if self.every <= 0 or (self._thread is not None and self._pid == os.getpid()):
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="leadgate-score-refresh",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """End the thread, after the batch it is writing (if any) commits."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.app.app_context():
                    done = rescore(get_store(self.app), get_scoring(self.app), stop=self._stop)
                if done.scored:
                    log.info("scores refreshed: %d lead(s), %d promoted to MQL", done.scored, done.promoted)
            except RulesError:
                log.error("the scoring rules cannot be read: scores are not refreshed")
            except Exception:
                log.exception("refreshing scores failed; trying again in %s s", self.every)
            self._stop.wait(self.every)


def start_refresher(app: Flask) -> Refresher:
    """Start this process's refresh thread (gunicorn starts one in each worker, after the fork:
    capture.gunicorn_conf); a second call in the same process does nothing."""
    key = EXTENSION + ".refresher"
    if key not in app.extensions:
        app.extensions[key] = Refresher(app, app.config["SCORE_REFRESH_SECONDS"])
    refresher = app.extensions[key]
    refresher.start()
    return refresher
