"""The schema: every table, as SQLAlchemy 2 typed models in one :data:`metadata`.

Alembic's migrations (capture/db/migrations) are generated from and checked against it; the
service never creates a table itself. Column limits of the form's fields come from the field
contract (capture.fields).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    event,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

# metadata, utcnow and UTCDateTime are read from here by the rest of the package, as before.
from capture.db.base import Base, UTCDateTime, field_text, metadata, text_column, utcnow  # noqa: F401
from capture.fields import EMAIL_MAX, RESOURCE_ID_MAX

#: Kept from the browser's User-Agent header (longer ones are cut).
USER_AGENT_MAX = 500
TOKEN_NAME_MAX = 100
CONSENT_VERSION_MAX = 40
ROLE_MAX = 20
#: A stage's name (capture.leads.stages.STAGES) and the texts a stage move keeps.
STAGE_MAX = 20
REASON_MAX = 500
ACTOR_MAX = 300
CURRENCY_MAX = 3
RULES_VERSION_MAX = 64


#: What migration 0005 makes besides the models, by name: indexes on lower(utm_*) and the
#: search box's index (SQLite: an FTS5 table, its shadow tables and triggers; PostgreSQL: a
#: trigram index). Alembic cannot compare expression indexes or virtual tables, so the
#: schema check (tests/test_migrations.py) leaves these out and checks that they exist.
MIGRATION_ONLY = frozenset({
    "ix_submissions_utm_source_lead_id", "ix_submissions_utm_medium_lead_id",
    "ix_submissions_utm_campaign_lead_id", "ix_leads_search",
    "leads_search", *(f"leads_search_{part}" for part in ("data", "idx", "content", "docsize", "config")),
})


class Profile:
    """What a person tells about themselves: the latest on a lead, as sent on a submission."""

    first_name: Mapped[str] = field_text("first_name")
    last_name: Mapped[str] = field_text("last_name")
    company: Mapped[str] = field_text("company")
    job_title: Mapped[str] = field_text("job_title")
    company_size: Mapped[str] = field_text("company_size")
    industry: Mapped[str] = field_text("industry")


class Lead(Profile, Base):
    """One person, whatever the case of their address: the newest non-empty details win."""

    __tablename__ = "leads"
    # The workspace pages through leads by (sort key, id): see capture.leads.queries.
    __table_args__ = (
        Index("ix_leads_last_seen_id", "last_seen", "id"),
        Index("ix_leads_first_seen_id", "first_seen", "id"),
        Index("ix_leads_company_id", "company", "id"),
        Index("ix_leads_score_id", "score", "id"),
        Index("ix_leads_stage_score_id", "stage", "score", "id"),
        # The list's filters on the score's parts and on when the lead became an MQL.
        Index("ix_leads_fit_id", "fit", "id"),
        Index("ix_leads_engagement_id", "engagement", "id"),
        Index("ix_leads_mql_at_id", "mql_at", "id"),
        Index("ix_leads_marketing_choice_score_id", "marketing_choice", "score", "id"),
        Index("ix_leads_erased_at", "erased_at"),  # the few erased leads (capture.leads.queries)
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
    # Qualification (capture.scoring, capture.leads.stages): the score as of ``scored_at``,
    # with the reasons behind it and the version of the rules that gave it.
    fit: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    engagement: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score_reasons: Mapped[str] = mapped_column(Text, default="", server_default="")
    rules_version: Mapped[str] = text_column(RULES_VERSION_MAX)
    scored_at: Mapped[datetime | None]
    stage: Mapped[str] = mapped_column(String(STAGE_MAX), default="lead", server_default="lead")
    stage_changed_at: Mapped[datetime | None]
    # When the lead first reached each step of the funnel; a skipped step is reached with the
    # step after it (docs/reports.md).
    mql_at: Mapped[datetime | None]
    sql_at: Mapped[datetime | None]
    prospect_at: Mapped[datetime | None]
    customer_at: Mapped[datetime | None]
    disqualified_reason: Mapped[str] = text_column(REASON_MAX)
    deal_value: Mapped[Any | None] = mapped_column(Numeric(14, 2))
    deal_currency: Mapped[str] = text_column(CURRENCY_MAX)
    #: Whether marketing consent is current (None: never asked): what may be emailed today,
    #: written with each consent event by capture.consent.ledger (the rule: capture.consent.state).
    marketing_choice: Mapped[bool | None] = mapped_column(Boolean)
    #: When the person confirmed their address (double opt-in: they clicked the link in an email).
    confirmed_at: Mapped[datetime | None]
    #: When the person's data was erased (capture.privacy): the row stays, emptied of everything
    #: personal, so that counts for reports stay; lists and exports leave it out.
    erased_at: Mapped[datetime | None]


# SQLite drops a table's triggers with it, not the search table they fed: metadata.drop_all
# (tests, tools that start over) leaves no leads_search behind to trip the next migration.
event.listen(Lead.__table__, "after_drop",
             DDL("DROP TABLE IF EXISTS leads_search").execute_if(dialect="sqlite"))


class StageChange(Base):
    """Append-only: a lead moved from one stage to another, when, by whom and why."""

    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_lead_id_created_at", "lead_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    created_at: Mapped[datetime]
    from_stage: Mapped[str] = mapped_column(String(STAGE_MAX))
    to_stage: Mapped[str] = mapped_column(String(STAGE_MAX))
    #: ``user`` (the workspace or the CLI), ``token`` (the API) or ``rules`` (the score).
    actor_kind: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = text_column(ACTOR_MAX)
    reason: Mapped[str] = text_column(REASON_MAX)
    channel: Mapped[str] = text_column(20)
    value: Mapped[Any | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = text_column(CURRENCY_MAX)


class RulesVersion(Base):
    """The scoring rules of each version that scored a lead, kept so a score can be replayed."""

    __tablename__ = "rules_versions"

    version: Mapped[str] = mapped_column(String(RULES_VERSION_MAX), primary_key=True)
    rules: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]


class Spend(Base):
    """What a source or campaign cost on a day, imported from a CSV (``leadgate spend import``)."""

    __tablename__ = "spend"
    __table_args__ = (Index("ix_spend_day_source_campaign", "day", "utm_source", "utm_campaign",
                            unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[Any] = mapped_column(Date)
    utm_source: Mapped[str] = field_text("utm_source")
    utm_campaign: Mapped[str] = field_text("utm_campaign")
    amount: Mapped[Any] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(CURRENCY_MAX))
    imported_at: Mapped[datetime]


class ConsentTextRow(Base):
    """The exact words of a consent box, stored once and referred to by their SHA-256."""

    __tablename__ = "consent_texts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(CONSENT_VERSION_MAX))
    text: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]


class Submission(Profile, Base):
    """One form post, kept as submitted: the evidence behind the lead and its consent."""

    __tablename__ = "submissions"
    # The leads of the posts a filter describes, from the index alone (capture.leads.filters);
    # the UTM fields' lower() indexes are in MIGRATION_ONLY.
    __table_args__ = (
        Index("ix_submissions_resource_id_lead_id", "resource_id", "lead_id"),
        Index("ix_submissions_created_at_lead_id", "created_at", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_MAX))
    created_at: Mapped[datetime]
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    utm_source: Mapped[str] = field_text("utm_source")
    utm_medium: Mapped[str] = field_text("utm_medium")
    utm_campaign: Mapped[str] = field_text("utm_campaign")
    utm_term: Mapped[str] = field_text("utm_term")
    utm_content: Mapped[str] = field_text("utm_content")
    referrer: Mapped[str] = field_text("referrer")
    landing_page: Mapped[str] = field_text("landing_page")
    user_agent: Mapped[str] = text_column(USER_AGENT_MAX)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))
    terms_accepted: Mapped[bool] = mapped_column(Boolean)
    terms_version: Mapped[str] = mapped_column(String(CONSENT_VERSION_MAX))
    terms_sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean)
    marketing_version: Mapped[str] = mapped_column(String(CONSENT_VERSION_MAX))
    marketing_sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))
    # The post's spam verdict (capture.spam.verdict): below the threshold, unless staff released
    # the post from the spam folder (capture.spam.folder).
    spam_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    spam_reasons: Mapped[str] = mapped_column(Text, default="", server_default="")


class HeldPost(Base):
    """The spam folder: a post held back from the leads, with its verdict and all it sent."""

    __tablename__ = "held_posts"
    __table_args__ = (Index("ix_held_posts_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The submission's uid: its download link works, and a release stores it under this uid.
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    created_at: Mapped[datetime]
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_MAX))
    ip_prefix: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    #: JSON list of the verdict's reasons: signal, weight, detail.
    reasons: Mapped[str] = mapped_column(Text)
    #: The whole post as a spool line (capture.spool.lines), what a release stores.
    payload: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime | None]
    released_by: Mapped[str] = text_column(ACTOR_MAX)


class StaffSession(Base):
    """A workspace sign-in; the cookie holds its key, the row says whether it still stands."""

    __tablename__ = "staff_sessions"

    #: SHA-256 of the random key in the session cookie: a copied table opens no session.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    user_agent: Mapped[str] = text_column(USER_AGENT_MAX)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))


class RateCount(Base):
    """A fixed-window counter of the rate limits kept in the database (sign-in failures when
    no Redis is configured): one row per limit and key, reset when its window ends."""

    __tablename__ = "rate_counts"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]


class ExportRecord(Base):
    """The export audit log: who exported which leads, when, how and how many rows."""

    __tablename__ = "export_audit"
    __table_args__ = (Index("ix_export_audit_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    #: ``cli``, ``workspace`` or ``api``.
    channel: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = text_column(ACTOR_MAX)
    #: The filter as the person gave it (query string or CLI options).
    filters: Mapped[str] = mapped_column(Text, default="", server_default="")
    rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: False while streaming, or when the export stopped before its last row.
    completed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class ConsentEvent(Base):
    """The consent ledger, append-only: who gave, declined, confirmed or withdrew which words
    for which purpose, when, how and from where (capture.consent.ledger holds the rules)."""

    __tablename__ = "consent_events"
    # Serves "the lead's latest marketing choice" (by time, then id) without a sort per lead.
    __table_args__ = (Index("ix_consent_events_lead_kind_time", "lead_id", "kind", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    #: The purpose: ``terms``, ``marketing``, or another of content/leadgate.yml.
    kind: Mapped[str] = mapped_column(String(20))
    #: ``given``, ``declined``, ``confirmed`` or ``withdrawn`` (capture.consent.ledger.EVENTS).
    event: Mapped[str] = mapped_column(String(12))
    #: Whether the event grants the purpose (given, confirmed): kept for the readers of 0001-0006.
    granted: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[str] = mapped_column(String(CONSENT_VERSION_MAX))
    sha256: Mapped[str] = mapped_column(ForeignKey("consent_texts.sha256"))
    created_at: Mapped[datetime]
    ip_prefix: Mapped[str | None] = mapped_column(String(64))
    #: How: ``form``, ``confirmation_link``, ``unsubscribe_page``, ``one_click`` (RFC 8058),
    #: ``staff``, ``import`` (capture.consent.ledger.METHODS).
    method: Mapped[str] = mapped_column(String(20), default="form", server_default="form")
    #: The resource and the page the event came from ("" when it came from neither).
    resource_id: Mapped[str] = text_column(RESOURCE_ID_MAX)
    page: Mapped[str] = field_text("landing_page")
    user_agent: Mapped[str] = text_column(USER_AGENT_MAX)
    #: The member of staff, for a staff action.
    actor: Mapped[str] = text_column(ACTOR_MAX)


class ConsentState(Base):
    """A lead's state per purpose and the event that set it (no foreign key: erasure deletes
    the events, and its trigger this row), kept with each event by capture.consent.ledger."""

    __tablename__ = "consent_states"

    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20), primary_key=True)
    state: Mapped[str] = mapped_column(String(12))
    event_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(CONSENT_VERSION_MAX))
    sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class Download(Base):
    __tablename__ = "downloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_MAX))
    created_at: Mapped[datetime]
    user_agent: Mapped[str] = text_column(USER_AGENT_MAX)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A member of staff who signs in to the workspace; rules in capture.staff.accounts."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(ROLE_MAX))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 is kept, and a prefix to recognise it by."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = text_column(TOKEN_NAME_MAX)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Job(Base):
    """A job of the outbox (capture.jobs): written in the transaction that makes it necessary,
    run at least once by a worker, retried with backoff, visible until done or given up."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_at", "state", "run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: What to run: a name of capture.jobs.worker's handlers (``email``, ``privacy_purge``…).
    kind: Mapped[str] = mapped_column(String(40))
    #: The handler's arguments, as JSON.
    payload: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    #: The person the job concerns, if any: erasure removes their pending jobs.
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    #: A job that must exist once (``privacy_purge:2026-12-03``): a second enqueue adds nothing.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: ``queued``, ``running``, ``done`` or ``failed`` (given up after max_attempts).
    state: Mapped[str] = mapped_column(String(12), default="queued", server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    #: When it may run next (the backoff after a failure).
    run_at: Mapped[datetime]
    #: A running job whose worker died is taken again after this time.
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str] = text_column(100)
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    finished_at: Mapped[datetime | None]


class Email(Base):
    """An email to one person (delivery of a resource, confirmation of an opt-in): recorded in
    the post's transaction, sent by a job; its Message-ID is chosen here so a retry reuses it."""

    __tablename__ = "emails"
    __table_args__ = (Index("ix_emails_lead_id_created_at", "lead_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    #: ``delivery`` or ``confirmation`` (capture.mail).
    kind: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(EMAIL_MAX))
    resource_id: Mapped[str] = text_column(RESOURCE_ID_MAX)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    #: The subject as sent (filled when it is sent).
    subject: Mapped[str] = text_column(300)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Suppression(Base):
    """An erased person's address, as a keyed hash: a spool replay or an import of data from
    before the erasure does not bring them back (capture.privacy)."""

    __tablename__ = "suppressions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(20))


class Erasure(Base):
    """Who erased which lead, when and how: holds nothing personal. While a lead has a row here,
    its consent events may be deleted (the ledger's triggers allow nothing else)."""

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_lead_id", "lead_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    #: ``cli``, ``workspace`` or ``retention``.
    channel: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = text_column(ACTOR_MAX)
