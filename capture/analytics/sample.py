"""A demo's sample data: clearly fake leads, posts, stage moves and spend, made the real way.

Every post goes through capture.leads.submission.record_submission with the app's scoring (so
scores, reasons and promotions to MQL are what real posts would give, at the time of the
post), every move through capture.leads.stages.move_stage by a fictional rep, every spend row
through capture.analytics.spend.import_spend, and a final rescore brings the scores to today's
decay. Addresses are under ``.example`` (reserved, RFC 2606: no real person has one) and the
surnames are variations of "Sample", so nobody takes the sample for real leads; that is also
how a sample's leads are told from real ones.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from capture.analytics.spend import SpendRow, import_spend
from capture.catalog import Catalog
from capture.db.models import Lead, utcnow
from capture.db.store import Store
from capture.leads.stages import Actor, Move, MoveRefused, move_stage
from capture.leads.submission import NewSubmission, record_submission
from capture.scoring.apply import Scoring, rescore
from capture.staff import accounts

#: The fictional rep who moves the sample's leads (a sales account nobody can sign in to).
REP_EMAIL = "rep@sample.example"
#: Every sample address ends so; a lead whose address does not is a real one.
SAMPLE_DOMAIN_END = ".example"
#: Until the settings list them (``disqualification_reasons`` in leadgate.yml).

FIRST_NAMES = ("Ada", "Bea", "Carl", "Dina", "Emil", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kira",
               "Lior", "Mina", "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Vik",
               "Wen", "Yusuf", "Zoe")
SURNAMES = ("Sample", "Sampleton", "Samplewood", "Samplesen", "Van Sample", "Sample-Okafor", "Samplewski",
            "Sampleby")
#: (company, domain, company size, industry): sizes and industries of the starter settings.
COMPANIES = (
    ("Contoso Sample Software", "contoso.example", "201-1000", "Software"),
    ("Fabrikam Sample Bank", "fabrikam.example", "1001-5000", "Financial services"),
    ("Northwind Sample Traders", "northwind.example", "201-1000", "Retail and e-commerce"),
    ("Tailspin Sample Health", "tailspin.example", "51-200", "Healthcare"),
    ("Litware Sample Labs", "litware.example", "11-50", "Software"),
    ("Adatum Sample Works", "adatum.example", "5000+", "Manufacturing"),
    ("Proseware Sample Studio", "proseware.example", "1-10", "Other"),
    ("Sample State University", "university.example", "1001-5000", "Education"),
    ("Wingtip Sample Toys", "wingtip.example", "51-200", "Retail and e-commerce"),
    ("Sample County Council", "council.example", "201-1000", "Public sector"),
    ("Woodgrove Sample Finance", "woodgrove.example", "201-1000", "Financial services"),
    ("Lucerne Sample Publishing", "lucerne.example", "11-50", "Other"),
)
#: (job title, weight): some fit (vp, head, director…), some do not (assistant, student).
TITLES = (("VP of Marketing", 2), ("Head of Growth", 3), ("Marketing Director", 3), ("Founder", 1),
          ("Chief Revenue Officer", 1), ("Marketing Manager", 5), ("Senior Analyst", 3),
          ("Demand Generation Lead", 3), ("Marketing Assistant", 3), ("Student", 3), ("Intern", 2),
          ("Consultant", 3), ("", 2))
#: (utm_source, utm_medium, utm_campaign, weight, daily spend range or None).
SOURCES = (
    ("newsletter", "email", "monthly-digest", 22, None),
    ("linkedin", "paid-social", "abm-q4", 18, (60, 140)),
    ("google", "cpc", "lead-scoring", 15, (40, 95)),
    ("google", "cpc", "brand", 7, (10, 30)),
    ("partner", "webinar", "revops-webinar", 10, None),
    ("linkedin", "social", "", 6, None),
    ("", "", "", 22, None),
)
#: Spend without a lead in the sample, to show how the report shows it.
SPONSORSHIP = ("podcast", "sponsorship", Decimal("2400.00"))
WEBINAR_FEE = Decimal("1500.00")
CHANNELS = ("email", "call", "meeting", "linkedin")


class SampleRefused(Exception):
    """The database holds real leads, and --force was not given."""


@dataclass
class Made:
    leads: int = 0
    posts: int = 0
    moves: Counter[str] = field(default_factory=Counter)
    spend_rows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    rescored: int = 0
    currency: str = "EUR"
    spend_total: Decimal = Decimal(0)

    def summary(self) -> str:
        moves = ", ".join(f"{n} to {stage}" for stage, n in sorted(self.moves.items()))
        span = (f" from {self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}" if self.first and self.last else "")
        return (f"Made {self.leads} sample leads ({self.posts} form posts){span}; "
                f"{sum(self.moves.values())} stage moves by {REP_EMAIL} ({moves or 'none'}); "
                f"{self.spend_rows} spend rows ({self.spend_total:,} {self.currency}); "
                f"{self.rescored} scores brought to today's decay. Addresses end in {SAMPLE_DOMAIN_END}.")


def real_leads(store: Store) -> int:
    """Leads whose address is not a sample's."""
    with store.read() as s:
        return s.execute(select(func.count()).select_from(Lead)
                         .where(Lead.email_key.not_like(f"%{SAMPLE_DOMAIN_END}"))).scalar_one()


def _rep(store: Store) -> Actor:
    """The rep's account, added with a random password nobody is told (so nobody signs in)."""
    try:
        accounts.account(store, REP_EMAIL)
    except accounts.AuthError:
        accounts.add_user(store, REP_EMAIL, secrets.token_urlsafe(32), "sales")
    return Actor("user", REP_EMAIL)


def _pick(rng: random.Random, weighted: tuple[tuple, ...], weight_at: int) -> tuple:
    return rng.choices(weighted, weights=[w[weight_at] for w in weighted])[0]


def make_sample(store: Store, catalog: Catalog, scoring: Scoring, *, count: int = 500,
                seed: int | None = None, days: int = 90, force: bool = False, now: datetime | None = None,
                progress: Callable[[str], None] | None = None) -> Made:
    """Make ``count`` sample leads spread over the last ``days`` days; SampleRefused when
    the database holds real leads and not ``force``."""
    real = real_leads(store)
    if real and not force:
        raise SampleRefused(
            f"the database holds {real} lead{' that is' if real == 1 else 's that are'} not from a sample: "
            "a sample would mix with them in every report. Use a database of its own for the demo "
            "(LEADGATE_DATABASE_URL), or add --force to mix them anyway.")
    resources = list(catalog)
    if not resources:
        raise SampleRefused("the catalog has no resource for sample leads to download.")
    rng = random.Random(seed)
    now = now or utcnow()
    settings = catalog.settings
    currency = settings.currency
    made = Made(currency=currency)
    # The first of the ``days`` days (today the last), so the report's default range holds them.
    start = datetime.combine(now.date() - timedelta(days=days - 1), time(), UTC)
    tag = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(4))

    posts: list[NewSubmission] = []
    people: dict[str, str] = {}
    for n in range(count):
        first_name, surname = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        company, domain, size, industry = rng.choice(COMPANIES)
        title = _pick(rng, TITLES, 1)[0]
        source = _pick(rng, SOURCES, 3)
        email = f"{first_name}.{surname.replace(' ', '-')}.{tag}{n}@{domain}".lower()
        people[email] = title
        first = start + timedelta(seconds=rng.uniform(0, (now - start).total_seconds() - 3600))
        visits = rng.choices((1, 2, 3), weights=(60, 25, 15))[0]
        times = sorted([first] + [first + timedelta(days=rng.uniform(1, 30)) for _ in range(visits - 1)])
        asked = rng.sample(resources, min(visits, len(resources)))
        opt_in = rng.random() < 0.4
        for visit, at in enumerate(t for t in times if t < now):
            resource = asked[visit] if visit < len(asked) and rng.random() < 0.8 else rng.choice(resources)
            utm = source if visit == 0 or rng.random() < 0.5 else SOURCES[0]
            posts.append(NewSubmission(
                email=email, resource_id=resource.id, terms=resource.terms, marketing=settings.marketing,
                marketing_opt_in=opt_in, first_name=first_name, last_name=surname, company=company,
                job_title=title, company_size=size if size in settings.company_sizes else "",
                industry=industry if industry in settings.industries else "",
                utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2],
                landing_page=f"https://site.example/resources/{resource.id}/",
                user_agent="Mozilla/5.0 (Leadgate sample data)", ip_prefix="192.0.2.0/24", created_at=at))
    posts.sort(key=lambda post: post.created_at)
    for n, post in enumerate(posts, 1):
        record_submission(store, post, scoring)
        if progress and n % 200 == 0:
            progress(f"{n}/{len(posts)} form posts stored")
    made.posts, made.leads = len(posts), len(people)
    if posts:
        made.first, made.last = posts[0].created_at, posts[-1].created_at

    rep = _rep(store)
    reasons = settings.disqualification_reasons
    with store.read() as s:
        leads = s.execute(select(Lead.id, Lead.email_key, Lead.stage, Lead.first_seen, Lead.mql_at)
                          .where(Lead.email_key.in_(list(people))).order_by(Lead.id)).all()
    for lead in leads:
        for move, at in _path(rng, lead, people.get(lead.email_key, ""), reasons, currency):
            if at >= now:
                break
            try:
                move_stage(store, lead.id, move, rep, threshold=scoring.threshold, disqualify_reasons=reasons,
                           currency=currency, now=at)
            except MoveRefused:
                break
            made.moves[move.to] += 1

    rows = _spend(rng, start, now, currency)
    if rows:
        import_spend(store, rows, now)
    made.spend_rows = len(rows)
    made.spend_total = sum((r.amount for r in rows), Decimal(0))
    made.rescored = rescore(store, scoring, now=now).scored
    return made


def _reason(rng: random.Random, reasons: tuple[str, ...], wanted: str) -> str:
    return wanted if wanted in reasons else rng.choice(reasons)


def _path(rng: random.Random, lead, title: str, reasons: tuple[str, ...], currency: str
          ) -> list[tuple[Move, datetime]]:
    """The moves the rep makes with this lead, each with its time (the caller stops at now)."""
    def after(at: datetime, low: float, high: float) -> datetime:
        return at + timedelta(days=rng.uniform(low, high))

    moves: list[tuple[Move, datetime]] = []
    roll = rng.random()
    if lead.stage == "lead":
        if title in ("Student", "Intern") and roll < 0.3:
            moves.append((Move("disqualified", reason=_reason(rng, reasons, "student")),
                          after(lead.first_seen, 1, 10)))
        elif roll < 0.04:
            # Sales took it straight from the form (it asked for a call): MQL is skipped.
            moves.append((Move("sql", reason="asked for a call"), after(lead.first_seen, 0.5, 5)))
        return moves
    if lead.stage != "mql" or lead.mql_at is None:
        return moves
    if roll < 0.08:
        return [(Move("disqualified", reason=_reason(rng, reasons, "not a buyer")), after(lead.mql_at, 1, 8))]
    if roll < 0.18:
        return [(Move("recycled", reason="not ready this quarter"), after(lead.mql_at, 3, 20))]
    if roll > 0.75:
        return moves
    at = after(lead.mql_at, 0.5, 7)
    moves.append((Move("sql", reason="accepted after a first look"), at))
    roll = rng.random()
    if roll < 0.1:
        return moves + [(Move("disqualified", reason=_reason(rng, reasons, "no budget")), after(at, 2, 10))]
    if roll < 0.2:
        return moves + [(Move("recycled", reason="timing"), after(at, 5, 20))]
    if roll > 0.85:
        return moves
    at = after(at, 1, 10)
    moves.append((Move("prospect", channel=rng.choice(CHANNELS)), at))
    roll = rng.random()
    if roll < 0.5:
        value = Decimal(rng.randrange(40, 600) * 100)
        moves.append((Move("customer", value=value, currency=currency), after(at, 5, 30)))
    elif roll < 0.62:
        moves.append((Move("disqualified", reason=_reason(rng, reasons, "no budget")), after(at, 3, 15)))
    return moves


def _spend(rng: random.Random, start: datetime, now: datetime, currency: str) -> list[SpendRow]:
    """Daily spend of the paid sources, the webinars' fees, and a sponsorship that brought no lead."""
    first, last = start.date(), now.date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    rows = [SpendRow(day, source, campaign, Decimal(rng.randrange(low * 100, high * 100)) / 100, currency)
            for source, _, campaign, _, daily in SOURCES if daily for low, high in [daily] for day in days]
    for day in days[len(days) // 6::max(1, len(days) // 3)][:3]:
        rows.append(SpendRow(day, "partner", "revops-webinar", WEBINAR_FEE, currency))
    source, campaign, amount = SPONSORSHIP
    rows.append(SpendRow(days[len(days) // 2], source, campaign, amount, currency))
    return rows
