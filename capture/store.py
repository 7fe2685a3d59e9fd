"""Every table and every query: one :class:`Store` owns the engine and the sessions.

The schema lives in :data:`metadata` alone so a migration can be generated from it; the
migrations in ``capture/migrations`` (run by :mod:`capture.migrate`) create and change the
tables. The service never creates a table itself.

SQLite choices, per connection: WAL (readers run beside the one writer; every process must
be on the same host, not a network filesystem), ``synchronous=NORMAL`` (a commit survives a
crash of the service but the last commits may be lost on power loss; ``FULL`` would cost an
fsync per lead while the HTTP layer, not the database, limits throughput — a lost lead on
power failure is the accepted price), ``busy_timeout`` (``SQLITE_BUSY_TIMEOUT_MS``, 5 s by
default; past it the write fails and the service spools the lead) and foreign keys on. Write
transactions start with ``BEGIN IMMEDIATE`` so they take the write lock before their first
read and wait for it instead of failing with "database is locked" when a read upgrades to a
write. The service copies the WAL into the database itself, from a background thread
(:class:`_Checkpointer`), so that no visitor's commit has to. PostgreSQL (psycopg 3)
needs none of this and gets plain transactions, from a small pool per process whose
connections are tested before use, so the first request after the server restarted gets a
fresh connection instead of an error.

The one write every visitor causes, :meth:`Store.record_submission`, runs its statements on
the driver's cursor (:class:`_DriverStatement`): compiled by SQLAlchemy once, values converted
by the column types, and on PostgreSQL sent without waiting when no answer is needed yet, from
a pool of its own whose connections are not tested (a post on a dropped one is sent again).

The engine is created on first use, never at import or in ``create_app``, so no connection
is opened before a server forks its workers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from time import monotonic, sleep
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import email_validator
from flask import Flask, current_app
from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    bindparam,
    case,
    create_engine,
    event,
    false,
    func,
    literal,
    make_url,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker

from capture.catalog import ConsentText

if TYPE_CHECKING:
    from capture.catalog import Catalog
    from capture.filters import LeadFilter

EXTENSION = "leadgate.store"

log = logging.getLogger(__name__)

#: Field limits, in characters, as in docs/architecture.md.
EMAIL_MAX = 254
NAME_MAX = 100
COMPANY_MAX = 200
JOB_TITLE_MAX = 150
CHOICE_MAX = 100
RESOURCE_ID_MAX = 64
UTM_MAX = 200
URL_MAX = 2000
USER_AGENT_MAX = 500
#: Milliseconds a SQLite write waits for the lock by default (the SQLITE_BUSY_TIMEOUT_MS setting).
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Seconds between a form post's tries to take SQLite's write lock (see _begin_immediate).
SQLITE_LOCK_RETRY_SECONDS = 0.0002
#: Seconds from a write to the service's own checkpoint of the SQLite WAL (see _Checkpointer).
SQLITE_CHECKPOINT_SECONDS = 0.02
#: WAL pages past which the committing connection checkpoints by itself: SQLite's own
#: checkpointing (1,000 pages by default), kept as a backstop far above what the
#: background checkpointer lets the WAL reach.
SQLITE_WAL_AUTOCHECKPOINT = 20_000
TOKEN_NAME_MAX = 100

PROFILE_FIELDS = ("first_name", "last_name", "company", "job_title", "company_size", "industry")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
SOURCE_FIELDS = (*UTM_FIELDS, "referrer", "landing_page")
#: The source of a lead as the export shows it (first and latest request).
EXPORT_SOURCE_FIELDS = (*UTM_FIELDS, "referrer", "landing_page", "resource_id")
#: Every column iter_export_rows can give (meanings in capture.export).
EXPORT_COLUMNS = (
    "id", "email", *PROFILE_FIELDS,
    *(f"first_{f}" for f in EXPORT_SOURCE_FIELDS), *(f"latest_{f}" for f in EXPORT_SOURCE_FIELDS),
    "resources", "submissions", "downloads", "last_download_at", "terms_version",
    "marketing_opt_in", "marketing_opt_in_at", "marketing_version", "first_seen", "last_seen",
)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (no time zones) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime}


def _text(length: int) -> Any:
    """A NOT NULL text column that holds "" when the visitor left the field empty."""
    return mapped_column(String(length), default="", server_default="")


class Profile:
    """What a person tells about themselves: the latest on a lead, as sent on a submission."""

    first_name: Mapped[str] = _text(NAME_MAX)
    last_name: Mapped[str] = _text(NAME_MAX)
    company: Mapped[str] = _text(COMPANY_MAX)
    job_title: Mapped[str] = _text(JOB_TITLE_MAX)
    company_size: Mapped[str] = _text(CHOICE_MAX)
    industry: Mapped[str] = _text(CHOICE_MAX)


class Lead(Profile, Base):
    """One person, whatever the case of their address: the newest non-empty details win."""

    __tablename__ = "leads"
    # The workspace pages through leads by (sort key, id): see Store.list_leads.
    __table_args__ = (
        Index("ix_leads_last_seen_id", "last_seen", "id"),
        Index("ix_leads_first_seen_id", "first_seen", "id"),
        Index("ix_leads_company_id", "company", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    email_key: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    # leads and submissions point at each other; use_alter lets PostgreSQL create (and drop)
    # the cycle, SQLite writes the constraint inline.
    first_submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", use_alter=True))
    last_submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", use_alter=True))


class ConsentTextRow(Base):
    """The exact words of a consent box, stored once and referred to by their SHA-256."""

    __tablename__ = "consent_texts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]


class Submission(Profile, Base):
    """One form post, kept as submitted: the evidence behind the lead and its consent."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_MAX))
    created_at: Mapped[datetime]
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    utm_source: Mapped[str] = _text(UTM_MAX)
    utm_medium: Mapped[str] = _text(UTM_MAX)
    utm_campaign: Mapped[str] = _text(UTM_MAX)
    utm_term: Mapped[str] = _text(UTM_MAX)
    utm_content: Mapped[str] = _text(UTM_MAX)
    referrer: Mapped[str] = _text(URL_MAX)
    landing_page: Mapped[str] = _text(URL_MAX)
    user_agent: Mapped[str] = _text(USER_AGENT_MAX)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))
    terms_accepted: Mapped[bool] = mapped_column(Boolean)
    terms_version: Mapped[str] = mapped_column(String(40))
    terms_sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean)
    marketing_version: Mapped[str] = mapped_column(String(40))
    marketing_sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))


class ConsentEvent(Base):
    """Append-only: who granted or declined what words, when, from which network."""

    __tablename__ = "consent_events"
    # Serves "the lead's latest marketing choice" (by time, then id) without a sort per lead.
    __table_args__ = (Index("ix_consent_events_lead_kind_time", "lead_id", "kind", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    kind: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))
    created_at: Mapped[datetime]
    ip_prefix: Mapped[str | None] = mapped_column(String(64))


class Download(Base):
    __tablename__ = "downloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_MAX))
    created_at: Mapped[datetime]
    user_agent: Mapped[str] = _text(USER_AGENT_MAX)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A member of staff who signs in to the workspace; rules in capture.auth."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 is kept, and a prefix to recognise it by."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = _text(TOKEN_NAME_MAX)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewSubmission:
    """A validated form post plus what the request told us; the input of record_submission."""

    email: str
    resource_id: str
    terms: ConsentText
    marketing: ConsentText
    marketing_opt_in: bool
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    job_title: str = ""
    company_size: str = ""
    industry: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    referrer: str = ""
    landing_page: str = ""
    user_agent: str = ""
    ip_prefix: str | None = None
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=utcnow)


def email_key(email: str) -> str:
    """The key that makes Ann@Example.com and ann@example.com one lead."""
    return email.lower()


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def latest_marketing(column: Any) -> Any:
    """A column of the lead's latest marketing consent event, per Lead row; NULL when none.

    Latest by the time the person chose, not by id: a post replayed from the spool keeps its
    time but is stored after posts that came later.
    """
    return (
        select(column)
        .where(ConsentEvent.lead_id == Lead.id, ConsentEvent.kind == "marketing")
        .order_by(ConsentEvent.created_at.desc(), ConsentEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def marketing_granted() -> Any:
    """The lead's latest marketing choice (True/False), NULL when never asked; per Lead row."""
    return latest_marketing(ConsentEvent.granted)


def lead_conditions(lead_filter: LeadFilter, catalog: Catalog | None = None) -> list[ColumnElement[bool]]:
    """WHERE conditions on a query of :class:`Lead` for a filter (meanings in capture.filters).

    Every list of leads (workspace, API, CLI export) filters through here so they agree.
    ``catalog`` is needed only for a resource type filter.
    """
    f = lead_filter
    conditions: list[ColumnElement[bool]] = []
    if f.q:
        # The database folds both sides, so "Émilie" finds Émilie even where it folds only A–Z.
        conditions.append(or_(*(
            column.icontains(f.q, autoescape=True)
            for column in (Lead.email, Lead.first_name, Lead.last_name, Lead.company)
        )))
    # Criteria on one form post must hold together, on the same post.
    per_post: list[ColumnElement[bool]] = []
    if f.seen_from:
        per_post.append(Submission.created_at >= _day_start(f.seen_from))
    if f.seen_to:
        per_post.append(Submission.created_at < _day_start(f.seen_to + timedelta(days=1)))
    if f.resource:
        per_post.append(Submission.resource_id == f.resource)
    if f.resource_type:
        if catalog is None:
            raise ValueError("a resource type filter needs the catalog")
        per_post.append(Submission.resource_id.in_(
            sorted(r.id for r in catalog if r.type == f.resource_type)))
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        value = getattr(f, name)
        if value:
            per_post.append(func.lower(getattr(Submission, name)) == value.lower())
    if per_post:
        conditions.append(
            select(Submission.id).where(Submission.lead_id == Lead.id, *per_post).exists())
    if f.marketing is True:
        conditions.append(marketing_granted() == True)  # noqa: E712 (SQL, not Python)
    elif f.marketing is False:
        conditions.append(func.coalesce(marketing_granted(), false()) == False)  # noqa: E712
    return conditions


#: Per process. A sync gunicorn worker uses one connection at a time; the overflow serves
#: threads (tests, commands). A request waits at most pool_timeout for a connection and
#: connect_timeout for the server, well inside gunicorn's 30 s worker timeout.
POSTGRESQL_ENGINE: dict[str, Any] = {
    "pool_size": 5, "max_overflow": 5, "pool_timeout": 10, "pool_recycle": 1800,
    "pool_pre_ping": True,
    "connect_args": {"connect_timeout": 5, "application_name": "leadgate"},
}
#: record_submission's own pool on PostgreSQL: one connection per request thread and one for
#: the spool's replay, and no ``SELECT 1`` before each use (a round trip of every post):
#: a post that finds its connection dead is sent again once on a new one instead.
POSTGRESQL_POST_ENGINE: dict[str, Any] = {
    **POSTGRESQL_ENGINE, "pool_size": 2, "max_overflow": 3, "pool_pre_ping": False}


def create_store_engine(url: str, *, foreign_keys: bool = True,
                        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
                        postgresql: Mapping[str, Any] = POSTGRESQL_ENGINE) -> Engine:
    """An engine with the settings above; foreign keys off only to rebuild SQLite tables."""
    # Errors reach the log; the parameters of a failed statement (addresses, names) must not.
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, hide_parameters=True, **postgresql)
    engine = create_engine(url, hide_parameters=True)
    _configure_sqlite(engine, foreign_keys, busy_timeout_ms)
    return engine


def _iso_text(dialect: str) -> Callable[[Any], Any]:
    """A UTC time column as ISO 8601 text to the second, formatted by the database itself."""
    if dialect == "postgresql":
        return lambda column: func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    # SQLite holds SQLAlchemy's DATETIME text, naive UTC: "2026-11-23 12:00:00.000000". Cutting
    # it is twice as fast as strftime(), which parses and formats each value.
    return lambda column: func.replace(func.substr(column, 1, 19), " ", "T").concat("Z")


def _use_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the file to WAL once (it stays so); retry, since the switch ignores busy_timeout."""
    deadline = monotonic() + busy_timeout_ms / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or monotonic() > deadline:
                raise
            sleep(0.01)


def _configure_sqlite(engine: Engine, foreign_keys: bool, busy_timeout_ms: int) -> None:
    pragmas = (f"busy_timeout={int(busy_timeout_ms)}", "synchronous=NORMAL",
               f"foreign_keys={'ON' if foreign_keys else 'OFF'}",
               f"wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so ours (below) is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        _use_wal(cursor, busy_timeout_ms)
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("leadgate_begin") != "IMMEDIATE":
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        # The write lock is taken as for a form post, without SQLite's sleeping back-off.
        driver = connection.connection.driver_connection
        try:
            _begin_immediate(driver, driver.cursor(), busy_timeout_ms)
        except sqlite3.Error as e:
            raise DBAPIError.instance("BEGIN IMMEDIATE", None, e, sqlite3.Error,
                                      hide_parameters=True, dialect=connection.dialect) from e


def writing(engine: Engine) -> Engine:
    """The same engine whose SQLite transactions take the write lock at BEGIN."""
    return engine.execution_options(leadgate_begin="IMMEDIATE")


@dataclass(frozen=True)
class _Connection:
    engine: Engine
    #: The same engine, its SQLite transactions beginning IMMEDIATE.
    write_engine: Engine
    reader: sessionmaker[Session]
    writer: sessionmaker[Session]
    #: record_submission's statements, compiled for this engine's dialect.
    submission_writes: _DriverWrites
    #: Where record_submission takes its connections: the engine itself on SQLite, a pool of
    #: its own on PostgreSQL (POSTGRESQL_POST_ENGINE).
    post_engine: Engine

    def dispose(self) -> None:
        self.engine.dispose()
        if self.post_engine is not self.engine:
            self.post_engine.dispose()


def _connect(url: str, busy_timeout_ms: int) -> _Connection:
    engine = create_store_engine(url, busy_timeout_ms=busy_timeout_ms)
    write_engine = writing(engine)
    post_engine = engine
    if engine.dialect.name != "sqlite":
        post_engine = create_store_engine(url, postgresql=POSTGRESQL_POST_ENGINE)
    return _Connection(engine, write_engine, sessionmaker(engine, expire_on_commit=False),
                       sessionmaker(write_engine, expire_on_commit=False),
                       _DriverWrites.compile(engine.dialect), post_engine)


class _Checkpointer(threading.Thread):
    """Copies the SQLite WAL into the database file, off the request path: 20 ms after a
    write, in small steps.

    Left to SQLite, the commit that takes the WAL past 1,000 pages does the copy itself: a
    third of a form post's database time went there, and every hundredth visitor waited for
    a copy and an fsync. Copied every 0.5 s, the bursts still showed in the p99 (23 ms under
    wrk); 20 ms after a write, the p99 was 16–19 ms at the same throughput
    (docs/performance.md). Copying from the request thread instead, right after a commit
    once the last copy was 20 ms old, blocked the worker through the copy's two fsyncs: 35–37%
    of the baseline's posts a second against 38–39% with this thread. A PASSIVE checkpoint
    neither waits for nor blocks writers and readers. An idle service does not wake up for it.
    """

    def __init__(self, engine: Engine, seconds: float = SQLITE_CHECKPOINT_SECONDS):
        super().__init__(name="leadgate-sqlite-checkpoint", daemon=True)
        self.pid = os.getpid()
        self.engine = engine
        self.seconds = seconds
        self.stopped = threading.Event()
        self.written = threading.Event()

    def nudge(self) -> None:
        """A write was committed: checkpoint within ``seconds``."""
        self.written.set()

    def run(self) -> None:
        failing = False
        while True:
            self.written.wait()
            if self.stopped.wait(self.seconds):  # let the writes of the next moments gather
                return
            self.written.clear()
            try:
                pooled = self.engine.raw_connection()
                try:
                    pooled.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    pooled.close()
            except Exception as e:  # noqa: BLE001 - the next round, or SQLite itself, catches up
                if not failing:
                    log.warning("SQLite checkpoints fail (tried again after the next write): %s", e)
                failing = True
            else:
                if failing:
                    log.info("SQLite checkpoints work again")
                failing = False

    def stop(self) -> None:
        self.stopped.set()
        self.written.set()
        self.join(timeout=5)


class Store:
    """The database of one app: engine, sessions and every query the service runs."""

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS):
        self.url = url
        self.sqlite_busy_timeout_ms = sqlite_busy_timeout_ms
        self._connection: _Connection | None = None
        self._lock = threading.Lock()
        self._checkpointer: _Checkpointer | None = None

    def _connected(self) -> _Connection:
        """Engine and session factories, made on first use: after any fork."""
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._connection = _connect(self.url, self.sqlite_busy_timeout_ms)
        return self._connection

    @property
    def engine(self) -> Engine:
        return self._connected().engine

    @property
    def post_engine(self) -> Engine:
        """Where record_submission takes its connections (its own pool on PostgreSQL)."""
        return self._connected().post_engine

    def _sqlite_checkpointer(self, connection: _Connection) -> _Checkpointer | None:
        """This process's checkpointer, started at its first SQLite write (after any fork: a
        thread does not cross one); None on PostgreSQL."""
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer.pid == os.getpid():
            return checkpointer
        if connection.engine.dialect.name != "sqlite":
            return None
        with self._lock:
            if self._checkpointer is None or self._checkpointer.pid != os.getpid():
                self._checkpointer = _Checkpointer(connection.engine)
                self._checkpointer.start()
            return self._checkpointer

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, and between tests)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._connection is not None:
            self._connection.dispose()
            self._connection = None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; closed (and its transaction ended) on exit."""
        with self._connected().reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._connected().writer.begin() as session:
            yield session

    def record_submission(self, data: NewSubmission) -> tuple[Lead, Submission]:
        """Store a valid form post in one transaction: lead upsert, submission, consent.

        Idempotent on ``data.uid``: recording a submission again (a spool replay) adds nothing
        and returns what the first time stored. Every visitor's post runs this, so it runs the
        statements of :class:`_DriverWrites`, not the ORM's unit of work, and binds every
        value it can before taking SQLite's write lock, which the other workers wait for.
        """
        at = data.created_at
        submission = {
            "uid": data.uid, "resource_id": data.resource_id, "created_at": at,
            "email": data.email, **{f: getattr(data, f) for f in (*PROFILE_FIELDS, *SOURCE_FIELDS)},
            "user_agent": data.user_agent[:USER_AGENT_MAX], "ip_prefix": data.ip_prefix,
            "terms_accepted": True, "terms_version": data.terms.version,
            "terms_sha256": data.terms.sha256, "marketing_opt_in": data.marketing_opt_in,
            "marketing_version": data.marketing.version, "marketing_sha256": data.marketing.sha256,
            "lead_id": 0,  # known once the lead is upserted
        }
        key = email_key(data.email)
        connection = self._connected()
        checkpointer = self._sqlite_checkpointer(connection)
        sql = connection.submission_writes
        # A new lead is inserted with this post's details, so that only its submission ids
        # change afterwards; a known lead comes back unchanged and is merged below.
        lead_values = sql.lead.parameters({
            "email": data.email, "email_key": key, "first_seen": at,
            "last_seen": at, **{name: getattr(data, name) for name in PROFILE_FIELDS}})
        text_values = [sql.consent_texts.parameters({
            "sha256": text.sha256, "kind": text.kind, "version": text.version, "text": text.text,
            "first_seen": at}) for text in (data.terms, data.marketing)]
        submission_values = sql.submission_parameters({**submission, "email_key": key})
        event_values = [sql.consent_events.parameters({
            "lead_id": 0, "submission_id": 0, "kind": text.kind, "granted": granted,
            "version": text.version, "sha256": text.sha256, "created_at": at,
            "ip_prefix": data.ip_prefix})
            for text, granted in ((data.terms, True), (data.marketing, data.marketing_opt_in))]
        for attempt in (1, 2):
            try:
                with sql.transaction(connection.post_engine, self.sqlite_busy_timeout_ms) as tx:
                    row, submission_id = sql.lead_and_submission(
                        tx, lead_values, text_values, submission_values)
                    if submission_id is not None:
                        lead = _merged_lead(row, data, submission_id)
                        changed = tuple(name for name in MERGED_FIELDS if lead[name] != row[name])
                        if changed:
                            update = sql.lead_update(changed)
                            tx.run(update, update.parameters({"lead_id": lead["id"], **lead}))
                        tx.many(sql.consent_events, [
                            sql.consent_events.put(values, lead_id=lead["id"],
                                                   submission_id=submission_id)
                            for values in event_values])
                break
            except DBAPIError as e:
                # A pooled connection the server dropped (a restart): the post was rolled back
                # with it, or committed and then found by its uid the second time.
                if not e.connection_invalidated or attempt == 2:
                    raise
        if checkpointer is not None:
            checkpointer.nudge()
        if submission_id is None:
            with self.read() as s:
                stored = s.scalars(select(Submission).where(Submission.uid == data.uid)).one()
                return s.get_one(Lead, stored.lead_id), stored
        submission["lead_id"] = lead["id"]
        return _as_loaded(Lead, lead), _as_loaded(Submission, {"id": submission_id, **submission})

    def has_submission(self, uid: uuid.UUID) -> bool:
        """Whether a submission is stored (a replay tells new leads from ones it already had)."""
        with self.read() as s:
            return s.scalars(select(Submission.id).where(Submission.uid == uid)).first() is not None

    def record_download(self, *, submission_uid: uuid.UUID, resource_id: str, user_agent: str = "",
                        ip_prefix: str | None = None, at: datetime | None = None) -> Download | None:
        """Log one download of a submission's link, now or ``at`` (replayed from the spool);
        None when that submission is not stored (still in the spool, or erased since)."""
        with self.write() as s:
            submission = s.scalars(
                select(Submission).where(Submission.uid == submission_uid)).one_or_none()
            if submission is None:
                return None
            download = Download(
                lead_id=submission.lead_id, submission_id=submission.id, resource_id=resource_id,
                created_at=at or utcnow(), user_agent=user_agent[:USER_AGENT_MAX], ip_prefix=ip_prefix,
            )
            s.add(download)
        return download

    def has_download(self, submission_uid: uuid.UUID, at: datetime) -> bool:
        """Whether a download of this submission at this instant is recorded: a spooled
        download is replayed once, however often its line is read."""
        with self.read() as s:
            return s.scalars(
                select(Download.id).join(Submission, Submission.id == Download.submission_id)
                .where(Submission.uid == submission_uid, Download.created_at == at)).first() is not None

    def find_lead(self, email: str) -> Lead | None:
        """The lead for an address typed in any case; None when unknown or not an address."""
        try:
            normalized = email_validator.validate_email(
                email.strip(), check_deliverability=False).normalized
        except email_validator.EmailNotValidError:
            return None
        with self.read() as s:
            return s.scalars(select(Lead).where(Lead.email_key == email_key(normalized))).one_or_none()

    def consent_events(self, lead_id: int) -> list[ConsentEvent]:
        """A lead's consent history, oldest first: the proof GDPR Art. 7(1) asks for."""
        with self.read() as s:
            return list(s.scalars(
                select(ConsentEvent).where(ConsentEvent.lead_id == lead_id).order_by(ConsentEvent.id)))

    def known_consent_text(self, sha256: str) -> ConsentText | None:
        """Words recorded earlier under this hash (pages built before a wording changed)."""
        with self.read() as s:
            row = s.get(ConsentTextRow, sha256)
            return None if row is None else ConsentText(row.kind, row.version, row.text)

    def iter_export_rows(self, lead_filter: LeadFilter | None = None, *,
                         columns: Sequence[str] = EXPORT_COLUMNS, catalog: Catalog | None = None,
                         order: tuple[str, str] | None = None,
                         chunk_size: int = 1000) -> Iterator[Sequence[Any]]:
        """The leads a filter selects (all by default) as rows of ``columns``.

        Oldest lead first, or in ``order``: (a key of LEAD_SORTS, "asc" or "desc"), the order of
        the workspace list, with the lead id breaking ties the same way.

        One statement (so one consistent snapshot), streamed: PostgreSQL reads it through a
        server-side cursor, SQLite steps through it; memory stays at one chunk. Only the joins
        and subqueries the columns need are in it. The database hands values over ready to
        write, because a million-lead export spends its time in per-row Python: text is ""
        when empty, times are ISO 8601 UTC text (``2026-11-23T12:00:00Z``) or None, counts and
        ids ints, ``marketing_opt_in`` a bool (False when never asked) and ``resources`` the
        resource ids of the lead's posts joined by ``;``, repeats included, in no order.
        """
        first, latest, marketing = aliased(Submission), aliased(Submission), aliased(ConsentEvent)
        iso = _iso_text(self.engine.dialect.name)
        expressions: dict[str, Any] = {
            "id": Lead.id, "email": Lead.email,
            **{f: getattr(Lead, f) for f in PROFILE_FIELDS},
            # Outer joins: no form post gives NULL, shown as "" like any empty field.
            **{f"first_{f}": func.coalesce(getattr(first, f), "") for f in EXPORT_SOURCE_FIELDS},
            **{f"latest_{f}": func.coalesce(getattr(latest, f), "") for f in EXPORT_SOURCE_FIELDS},
            # Most leads sent one form: their first post is their only one, already joined.
            "resources": case(
                (Lead.first_submission_id == Lead.last_submission_id, first.resource_id),
                else_=select(func.aggregate_strings(Submission.resource_id, ";"))
                .where(Submission.lead_id == Lead.id).scalar_subquery()),
            "submissions": select(func.count()).where(Submission.lead_id == Lead.id).scalar_subquery(),
            "downloads": select(func.count()).where(Download.lead_id == Lead.id).scalar_subquery(),
            "last_download_at": iso(select(func.max(Download.created_at))
                                    .where(Download.lead_id == Lead.id).scalar_subquery()),
            "terms_version": func.coalesce(latest.terms_version, ""),
            "marketing_opt_in": func.coalesce(marketing.granted, false()),
            "marketing_opt_in_at": iso(marketing.created_at),
            "marketing_version": func.coalesce(marketing.version, ""),
            "first_seen": iso(Lead.first_seen), "last_seen": iso(Lead.last_seen),
        }
        unknown = [c for c in columns if c not in expressions]
        if unknown:
            raise ValueError(f"unknown export columns: {', '.join(unknown)}")
        stmt = select(*(expressions[c].label(c) for c in columns)).select_from(Lead)
        wanted = set(columns)
        if wanted & ({f"first_{f}" for f in EXPORT_SOURCE_FIELDS} | {"resources"}):
            stmt = stmt.outerjoin(first, first.id == Lead.first_submission_id)
        if wanted & ({f"latest_{f}" for f in EXPORT_SOURCE_FIELDS} | {"terms_version"}):
            stmt = stmt.outerjoin(latest, latest.id == Lead.last_submission_id)
        if wanted & {"marketing_opt_in", "marketing_opt_in_at", "marketing_version"}:
            stmt = stmt.outerjoin(marketing, marketing.id == latest_marketing(ConsentEvent.id))
        stmt = (
            stmt.where(*(lead_conditions(lead_filter, catalog) if lead_filter else ()))
            .order_by(*_lead_order(order))
            .execution_options(yield_per=chunk_size)
        )
        # A Core connection, not a Session: plain rows, without the ORM's per-row loading; and
        # whole chunks from the cursor rather than a Python call per row.
        with self._connected().engine.connect() as connection:
            for chunk in connection.execute(stmt).partitions():
                yield from chunk

    # Staff accounts and API tokens: the rules (normalising, hashing, roles) are in capture.auth.

    def add_user(self, email: str, password_hash: str, role: str) -> User:
        """A new account; AlreadyExists when the address has one."""
        with self.write() as s:
            if s.scalars(select(User.id).where(User.email == email)).first() is not None:
                raise AlreadyExists(f"There is already an account for {email}.")
            user = User(email=email, password_hash=password_hash, role=role, created_at=utcnow(),
                        disabled=False)
            s.add(user)
        return user

    def users(self) -> list[User]:
        with self.read() as s:
            return list(s.scalars(select(User).order_by(User.email)))

    def get_user(self, user_id: int) -> User | None:
        with self.read() as s:
            return s.get(User, user_id)

    def user_by_email(self, email: str) -> User | None:
        with self.read() as s:
            return s.scalars(select(User).where(User.email == email)).one_or_none()

    def update_user(self, email: str, *, disabled: bool | None = None,
                    password_hash: str | None = None) -> User | None:
        """Disable or enable an account, or set its password; None when there is no account."""
        with self.write() as s:
            user = s.scalars(select(User).where(User.email == email)).one_or_none()
            if user is not None and disabled is not None:
                user.disabled = disabled
            if user is not None and password_hash is not None:
                user.password_hash = password_hash
        return user

    def add_token(self, user_id: int, name: str, token_hash: str, prefix: str) -> ApiToken:
        with self.write() as s:
            token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, prefix=prefix,
                             created_at=utcnow())
            s.add(token)
        return token

    def tokens(self) -> list[tuple[ApiToken, str]]:
        """Every token with its owner's email, oldest first, revoked ones included."""
        with self.read() as s:
            return [(token, email) for token, email in s.execute(
                select(ApiToken, User.email).join(User).order_by(ApiToken.id))]

    def revoke_token(self, token_id: int) -> ApiToken | None:
        """Revoke once (a second revoke keeps the first time); None when there is no such token."""
        with self.write() as s:
            token = s.get(ApiToken, token_id)
            if token is not None and token.revoked_at is None:
                token.revoked_at = utcnow()
        return token

    def use_token(self, token_hash: str) -> User | None:
        """The owner of a live token, noting when it was used; None when unknown, revoked or
        the owner is disabled."""
        with self.write() as s:
            row = s.execute(
                select(ApiToken, User).join(User)
                .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None),
                       User.disabled == false())
            ).one_or_none()
            if row is None:
                return None
            token, user = row
            token.last_used_at = utcnow()
        return user

    # The sales workspace.

    def list_leads(self, lead_filter: LeadFilter | None = None, sort: str = "last_seen",
                   direction: str = "desc", *, after: tuple[Any, int] | None = None,
                   before: tuple[Any, int] | None = None, limit: int = 50,
                   catalog: Catalog | None = None) -> LeadPage:
        """One page of the leads a filter selects, by keyset on (sort key, id).

        ``after`` and ``before`` are the (sort key, id) of the row the page starts after or
        ends before (``LeadPage.first_key``/``last_key`` of the page next to it). The database
        walks the (sort key, id) index from there, so the 500th page costs what the first does:
        there is no OFFSET, and rows added meanwhile neither repeat nor skip a row.
        """
        if sort not in LEAD_SORTS or direction not in ("asc", "desc"):
            raise ValueError(f"unknown order {sort!r} {direction!r}")
        if after is not None and before is not None:
            raise ValueError("give after or before, not both")
        column = LEAD_SORTS[sort]
        latest = aliased(Submission)
        backwards = before is not None
        # Going back reads the rows before the cursor nearest first, then turns them round.
        descending = (direction == "desc") != backwards
        stmt = (
            select(Lead.id, Lead.email, Lead.first_name, Lead.last_name, Lead.company,
                   Lead.job_title, Lead.first_seen, Lead.last_seen,
                   marketing_granted().label("marketing"),
                   latest.resource_id.label("latest_resource_id"),
                   latest.utm_source.label("latest_utm_source"),
                   latest.utm_medium.label("latest_utm_medium"),
                   latest.utm_campaign.label("latest_utm_campaign"),
                   column.label("sort_key"))
            .outerjoin(latest, latest.id == Lead.last_submission_id)
            .where(*(lead_conditions(lead_filter, catalog) if lead_filter else ()))
            .order_by(*((column.desc(), Lead.id.desc()) if descending else (column, Lead.id)))
            .limit(limit + 1)
        )
        cursor = before if backwards else after
        if cursor is not None:
            key = tuple_(column, Lead.id)
            bound = tuple_(literal(cursor[0], column.type), literal(cursor[1], Lead.id.type))
            stmt = stmt.where(key < bound if descending else key > bound)
        with self.read() as s:
            rows = list(s.execute(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        return LeadPage(rows, has_previous=more if backwards else after is not None,
                        has_next=backwards or more)

    def count_leads(self, lead_filter: LeadFilter | None = None, catalog: Catalog | None = None) -> int:
        """How many leads a filter selects, on every page of the list: the total above it."""
        stmt = select(func.count()).select_from(Lead).where(
            *(lead_conditions(lead_filter, catalog) if lead_filter else ()))
        with self.read() as s:
            return s.execute(stmt).scalar_one()

    def get_lead(self, lead_id: int) -> Lead | None:
        with self.read() as s:
            return s.get(Lead, lead_id)

    def lead_timeline(self, lead_id: int) -> list[TimelineEntry]:
        """Everything a lead did, oldest first; a form post comes before the consent it gave."""
        with self.read() as s:
            entries = [
                *(TimelineEntry(row.created_at, "submission", row) for row in s.scalars(
                    select(Submission).where(Submission.lead_id == lead_id))),
                *(TimelineEntry(row.created_at, "consent", row) for row in s.scalars(
                    select(ConsentEvent).where(ConsentEvent.lead_id == lead_id))),
                *(TimelineEntry(row.created_at, "download", row) for row in s.scalars(
                    select(Download).where(Download.lead_id == lead_id))),
            ]
        return sorted(entries, key=lambda e: (e.at, TIMELINE_ORDER.index(e.kind), e.item.id))


def _lead_order(order: tuple[str, str] | None) -> tuple[Any, ...]:
    if order is None:
        return (Lead.id,)
    sort, direction = order
    if sort not in LEAD_SORTS or direction not in ("asc", "desc"):
        raise ValueError(f"unknown order {sort!r} {direction!r}")
    column = LEAD_SORTS[sort]
    return (column.desc(), Lead.id.desc()) if direction == "desc" else (column, Lead.id)


#: What the lead list can be sorted by, in the words of its links.
LEAD_SORTS: dict[str, Any] = {
    "last_seen": Lead.last_seen,
    "first_seen": Lead.first_seen,
    "email": Lead.email_key,
    "company": Lead.company,
}
TIMELINE_ORDER = ("submission", "consent", "download")


@dataclass(frozen=True)
class LeadPage:
    """Rows of the lead list (``sort_key`` and ``id`` make each row's cursor), and whether
    there are rows on either side."""

    rows: list[Any]
    has_previous: bool
    has_next: bool

    @property
    def first_key(self) -> tuple[Any, int] | None:
        return (self.rows[0].sort_key, self.rows[0].id) if self.rows else None

    @property
    def last_key(self) -> tuple[Any, int] | None:
        return (self.rows[-1].sort_key, self.rows[-1].id) if self.rows else None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    item: Submission | ConsentEvent | Download


class AlreadyExists(Exception):
    """An insert that would break a unique rule; the message names the value."""


ModelT = TypeVar("ModelT", bound="Base")


def _as_loaded(model: type[ModelT], values: Mapping[str, Any]) -> ModelT:
    """An instance holding values as if loaded: record_submission's answer is read, never
    flushed, and building it through the ORM's constructor (an event per attribute) cost
    about a tenth of a form post's CPU time."""
    instance = model()
    instance.__dict__.update(values)
    return instance


#: The lead's columns _merged_lead may change.
MERGED_FIELDS = ("email", "first_seen", "last_seen", "first_submission_id", "last_submission_id",
                 *PROFILE_FIELDS)


@dataclass(frozen=True)
class _DriverStatement:
    """A Core statement compiled once for one dialect, run on the driver's own cursor.

    ``Connection.execute()`` cost SQLAlchemy 80–150 µs per statement (execution context,
    parameters, result) where SQLite needed 2–20 µs to run it: most of a form post's time
    (docs/performance.md). The SQL and the values' conversions still come from SQLAlchemy,
    from the column types' own processors, so a row is stored exactly as the ORM stores it.
    """

    sql: str
    #: Bind names in the driver's order (positional paramstyles) or as its keys (named ones).
    names: tuple[str, ...]
    positional: bool
    #: The bind values in that order, taken from a mapping at C speed (operator.itemgetter).
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    #: (position, converter) of the values a column type converts for the driver.
    to_driver: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: Values for binds the caller leaves out: the columns' Python-side scalar defaults.
    defaults: Mapping[str, Any]
    #: Names and converters of the RETURNING columns.
    returns: tuple[str, ...]
    from_driver: tuple[Callable[[Any], Any] | None, ...]
    #: Where each bind goes in the driver's parameters: an index, or the name itself.
    slots: Mapping[str, int | str]

    @classmethod
    def compile(cls, statement: Any, dialect: Any, keys: Sequence[str]) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        if len(names) < 2:  # itemgetter of one name gives a value, not a tuple
            raise RuntimeError(f"too few values for a driver statement: {compiled.string!r}")
        table = getattr(statement, "table", None)
        defaults = {}
        for name in names:
            if name in keys:
                continue
            column = table.c.get(name) if table is not None else None
            if column is None or column.default is None or not column.default.is_scalar:
                raise RuntimeError(f"no value for {name!r} in {compiled.string!r}")
            defaults[name] = column.default.arg
        converters = ((i, _bind_converter(compiled.binds[name].type, dialect))
                      for i, name in enumerate(names))
        returning = statement.exported_columns
        return cls(
            sql=compiled.string, names=names, positional=compiled.positional,
            pick=itemgetter(*names),
            to_driver=tuple((i, convert) for i, convert in converters if convert is not None),
            defaults=defaults,
            returns=tuple(column.key for column in returning),
            from_driver=tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                              for column in returning),
            slots={name: i if compiled.positional else name for i, name in enumerate(names)})

    def parameters(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """The driver's parameters for these values, converted by the column types."""
        picked = list(self.pick({**self.defaults, **values} if self.defaults else values))
        for i, convert in self.to_driver:
            picked[i] = convert(picked[i])
        return picked if self.positional else dict(zip(self.names, picked))

    def put(self, parameters: list[Any] | dict[str, Any], **ids: int) -> list[Any] | dict[str, Any]:
        """A copy of ``parameters`` with the ids learnt inside the transaction (integers: the
        driver takes them as they are)."""
        parameters = parameters.copy()
        for name, value in ids.items():
            parameters[self.slots[name]] = value  # type: ignore[index]
        return parameters

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {name: value if convert is None else convert(value)
                for name, convert, value in zip(self.returns, self.from_driver, values)}


def _bind_converter(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's conversion of a value for the driver. A post binds the same time
    nine times (lead, submission, consent texts and events): times are converted once."""
    convert = type_.dialect_impl(dialect).bind_processor(dialect)
    if convert is not None and isinstance(type_, UTCDateTime):
        return lru_cache(maxsize=8)(convert)
    return convert


class _DriverTransaction:
    """One transaction on a pooled connection's driver, running _DriverStatements.

    On PostgreSQL the statements go in psycopg's pipeline mode: those whose answer is not
    needed yet are sent without waiting for the ones before.
    """

    def __init__(self, cursor: Any):
        self.cursor = cursor

    def one(self, statement: _DriverStatement, parameters: Any) -> dict[str, Any]:
        self.cursor.execute(statement.sql, parameters)
        return statement.row(self.cursor.fetchone())

    def scalar(self, statement: _DriverStatement, parameters: Any) -> Any:
        self.cursor.execute(statement.sql, parameters)
        row = self.cursor.fetchone()
        return None if row is None else statement.row(row)[statement.returns[0]]

    def run(self, statement: _DriverStatement, parameters: Any) -> None:
        self.cursor.execute(statement.sql, parameters)

    def send(self, statement: _DriverStatement, parameters: Any) -> Any:
        """Run on a cursor of its own, returned for reading the answer later: in PostgreSQL's
        pipeline the statement goes out without waiting for it."""
        cursor = self.cursor.connection.cursor()
        cursor.execute(statement.sql, parameters)
        return cursor

    def many(self, statement: _DriverStatement, rows: Sequence[Any]) -> None:
        self.cursor.executemany(statement.sql, rows)


@dataclass(frozen=True)
class _DriverWrites:
    """The statements of record_submission for one dialect, and how to run them."""

    dialect: Any
    consent_texts: _DriverStatement
    lead: _DriverStatement
    submission: _DriverStatement
    consent_events: _DriverStatement
    #: PostgreSQL: the submission's INSERT … SELECT that finds its lead by email key, so that
    #: it goes out in the lead upsert's round trip. None on SQLite, where nothing waits.
    submission_of_lead: _DriverStatement | None
    #: UPDATEs of a lead, one per set of changed columns, compiled when first needed.
    _updates: dict[tuple[str, ...], _DriverStatement] = field(default_factory=dict)

    @classmethod
    def compile(cls, dialect: Any) -> _DriverWrites:
        """Build and compile once per engine; each post only binds values.

        Building ``insert(…).values(…).on_conflict_…()`` anew for each post cost SQLAlchemy
        more than running it, and the ORM's flush as much again (docs/performance.md).
        """
        module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect.name)
        if module is None:
            raise RuntimeError(f"unsupported database {dialect.name!r}: use SQLite or PostgreSQL")
        leads, submissions = Lead.__table__, Submission.__table__
        lead = module.insert(leads)
        profile_and_source = (*PROFILE_FIELDS, *SOURCE_FIELDS)
        posted = ("uid", "resource_id", "created_at", "email", *profile_and_source, "user_agent",
                  "ip_prefix", "terms_accepted", "terms_version", "terms_sha256",
                  "marketing_opt_in", "marketing_version", "marketing_sha256")
        submission_of_lead = None
        if dialect.name == "postgresql":
            found = select(leads.c.id, *(bindparam(name, type_=submissions.c[name].type)
                                         for name in posted))
            found = found.where(leads.c.email_key == bindparam("email_key", type_=leads.c.email_key.type))
            submission_of_lead = _DriverStatement.compile(
                module.insert(submissions).from_select(["lead_id", *posted], found)
                .on_conflict_do_nothing(index_elements=["uid"]).returning(submissions.c.id),
                dialect, ("email_key", *posted))
        return cls(
            dialect=dialect,
            consent_texts=_DriverStatement.compile(
                module.insert(ConsentTextRow.__table__).on_conflict_do_nothing(index_elements=["sha256"]),
                dialect, ("sha256", "kind", "version", "text", "first_seen")),
            # DO UPDATE of nothing rather than DO NOTHING: the row comes back, and stays locked
            # until commit, whether this statement inserted it or it was there already.
            lead=_DriverStatement.compile(
                lead.on_conflict_do_update(index_elements=["email_key"],
                                           set_={"email_key": lead.excluded.email_key})
                .returning(*leads.c),
                dialect, ("email", "email_key", "first_seen", "last_seen", *PROFILE_FIELDS)),
            submission=_DriverStatement.compile(
                module.insert(submissions).on_conflict_do_nothing(index_elements=["uid"])
                .returning(submissions.c.id),
                dialect, ("lead_id", *posted)),
            consent_events=_DriverStatement.compile(
                ConsentEvent.__table__.insert(), dialect,
                ("lead_id", "submission_id", "kind", "granted", "version", "sha256", "created_at",
                 "ip_prefix")),
            submission_of_lead=submission_of_lead,
        )

    def submission_parameters(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """The submission's parameters for lead_and_submission; ``values`` hold its email key."""
        return (self.submission_of_lead or self.submission).parameters(values)

    def lead_and_submission(self, tx: _DriverTransaction, lead: Any, texts: Sequence[Any],
                            submission: Any) -> tuple[dict[str, Any], int | None]:
        """Upsert the lead, store the consent texts, insert the submission: the lead's row
        and the submission's id, None when its uid was stored before (a replay).

        PostgreSQL gets the three in one round trip, and the rest of the transaction with its
        commit in a second; a post took four before (with the pool's ``SELECT 1``).
        """
        if self.submission_of_lead is None:
            row = tx.one(self.lead, lead)
            tx.many(self.consent_texts, texts)
            return row, tx.scalar(self.submission, self.submission.put(submission, lead_id=row["id"]))
        upserted = tx.send(self.lead, lead)
        tx.many(self.consent_texts, texts)
        inserted = tx.send(self.submission_of_lead, submission)
        row = self.lead.row(upserted.fetchone())
        found = inserted.fetchone()
        return row, None if found is None else self.submission_of_lead.row(found)["id"]

    def lead_update(self, columns: tuple[str, ...]) -> _DriverStatement:
        """The UPDATE of these columns of a lead: SET only what changed, so that SQLite leaves
        the indexes of unchanged columns alone (a new lead changes its submission ids only)."""
        statement = self._updates.get(columns)
        if statement is None:
            leads = Lead.__table__
            statement = self._updates[columns] = _DriverStatement.compile(
                leads.update().where(leads.c.id == bindparam("lead_id")), self.dialect,
                ("lead_id", *columns))
        return statement

    @contextmanager
    def transaction(self, engine: Engine, busy_timeout_ms: int) -> Iterator[_DriverTransaction]:
        """Commit on success, roll back on any error; driver errors raised as SQLAlchemy's
        (what callers catch), without parameters, and a dead connection left out of the pool."""
        dialect = self.dialect
        try:
            pooled = engine.raw_connection()
        except dialect.loaded_dbapi.Error as e:  # could not connect
            raise DBAPIError.instance(None, None, e, dialect.loaded_dbapi.Error,
                                      hide_parameters=True, dialect=dialect) from e
        driver = pooled.driver_connection
        cursor = None
        try:
            cursor = driver.cursor()
            if dialect.name == "sqlite":
                _begin_immediate(driver, cursor, busy_timeout_ms)
                yield _DriverTransaction(cursor)
                driver.commit()
            else:
                with driver.pipeline():
                    yield _DriverTransaction(cursor)
                    driver.commit()
        except dialect.loaded_dbapi.Error as e:
            gone = dialect.is_disconnect(e, pooled.dbapi_connection, cursor)
            if gone:
                pooled.invalidate(e)
            else:
                _rollback_quietly(driver)
            raise DBAPIError.instance(
                None, None, e, dialect.loaded_dbapi.Error, hide_parameters=True,
                connection_invalidated=gone, dialect=dialect) from e
        except BaseException:
            _rollback_quietly(driver)
            raise
        finally:
            pooled.close()


def _begin_immediate(driver: sqlite3.Connection, cursor: sqlite3.Cursor, busy_timeout_ms: int) -> None:
    """Take SQLite's write lock, trying again every 0.2 ms until the busy timeout.

    SQLite's own busy handler sleeps 1, 2, 5, 10… ms between tries, while the other worker
    holds the lock for a fraction of a millisecond: under load, each worker slept through a
    fifth of its time there, and retrying sooner gave 11% more posts a second
    (docs/performance.md). The statements inside the transaction never wait (WAL: readers do
    not block the writer), so the connection's busy timeout is back before the first of them.
    """
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline = monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or monotonic() >= deadline:
                    raise
            sleep(SQLITE_LOCK_RETRY_SECONDS)
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def _rollback_quietly(driver: Any) -> None:
    """Roll back after a failure, which may have taken the connection with it."""
    try:
        driver.rollback()
    except Exception:  # noqa: BLE001 - the first error is the one to report
        pass


def _merged_lead(lead: Mapping[str, Any], data: NewSubmission, submission_id: int) -> dict[str, Any]:
    """The lead's columns after this submission: newest non-empty values win; an older post
    (a late replay) only fills gaps."""
    merged = dict(lead)
    newer = data.created_at >= lead["last_seen"] or lead["last_submission_id"] is None
    for name in PROFILE_FIELDS:
        value = getattr(data, name)
        if value and (newer or not merged[name]):
            merged[name] = value
    if newer:
        merged.update(email=data.email, last_seen=data.created_at, last_submission_id=submission_id)
    if merged["first_submission_id"] is None or data.created_at < merged["first_seen"]:
        merged.update(first_seen=data.created_at, first_submission_id=submission_id)
    return merged


def get_store(app: Flask | None = None) -> Store:
    """The store of the given app, or of the current one."""
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """Give the app its Store; nothing connects until the first query."""
    app.extensions[EXTENSION] = Store(app.config["DATABASE_URL"],
                                      sqlite_busy_timeout_ms=app.config["SQLITE_BUSY_TIMEOUT_MS"])
