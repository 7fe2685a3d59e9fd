"""Fit, engagement and score from a lead's details and posts: pure functions, no database.

- **Fit** (0–100) adds the points of every fit rule that matches what the person told:
  industry, company size, whole words of the job title, the kind of email domain, and the
  marketer's domain lists. The sum is held within 0–100.
- **Engagement** (0–100) adds, for each resource the lead requested, the points of its type,
  plus ``more_resources`` for the second, third… different resource, each halved every
  ``half_life_days`` since the lead last requested it: a request a year ago with a 30-day
  half-life keeps 0.02% of its points.
- **Score** (0–100) is ``fit × fit weight + engagement × engagement weight`` (weights in
  percent), rounded; at or over ``mql_threshold`` the lead is an MQL.

The same lead, posts, rules and time always give the same numbers: that is what makes a
stored score replayable (capture.scoring.apply.replay).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from capture.scoring.domains import domain_of, kind_of_domain, on_list
from capture.scoring.rules import Rules, company_size_range

DAY_SECONDS = 86400.0
EMAIL_LABELS = {"company_domain": "company address", "free_mail": "free-mail address",
                "disposable": "disposable address"}
ORDINALS = {2: "2nd", 3: "3rd"}


@dataclass(frozen=True)
class Request:
    """A resource the lead asked for (a form post), as engagement counts it."""

    resource_id: str
    resource_type: str
    at: datetime


@dataclass(frozen=True)
class Reason:
    """One rule that fired, and the points it gave (engagement: after decay)."""

    rule: str
    points: float

    def __str__(self) -> str:
        shown = f"{self.points:g}" if self.points == int(self.points) else f"{self.points:.1f}"
        return f"{self.rule} {'+' if self.points >= 0 else '−'}{shown.lstrip('-')}"


@dataclass(frozen=True)
class Scored:
    fit: int
    engagement: int
    score: int
    fit_reasons: tuple[Reason, ...]
    engagement_reasons: tuple[Reason, ...]
    version: str
    at: datetime

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self.fit_reasons + self.engagement_reasons

    def reasons_json(self) -> str:
        """What a lead row keeps in ``score_reasons``."""
        return json.dumps({
            "version": self.version, "at": self.at.isoformat(),
            "fit": [[r.rule, r.points] for r in self.fit_reasons],
            "engagement": [[r.rule, r.points] for r in self.engagement_reasons],
        }, separators=(",", ":"), ensure_ascii=False)


def reasons_from_json(text: str) -> tuple[list[Reason], list[Reason]]:
    """(fit reasons, engagement reasons) of a stored ``score_reasons``; empty when never scored."""
    if not text:
        return [], []
    data = json.loads(text)
    return ([Reason(rule, points) for rule, points in data["fit"]],
            [Reason(rule, points) for rule, points in data["engagement"]])


def readable_reasons(text: str) -> str:
    """``rule +points; rule −points``: the export's CSV cell for a stored ``score_reasons``."""
    fit, engagement = reasons_from_json(text)
    return "; ".join(str(r) for r in fit + engagement)


def _clamp(value: float) -> int:
    return max(0, min(100, round(value)))


def fit_reasons(profile: Mapping[str, str], email: str, rules: Rules) -> list[Reason]:
    """Every fit rule that matches the details a person gave."""
    reasons: list[Reason] = []
    industry = profile.get("industry", "").strip().lower()
    if industry:
        for rule in rules.industry:
            if industry in (v.lower() for v in rule.values):
                reasons.append(Reason(f"industry {profile['industry']}", rule.points))
    size = company_size_range(profile.get("company_size", ""))
    if size is not None:
        low, high = size
        for rule in rules.company_size:
            within = low >= rule.minimum and (
                rule.maximum is not None and high is not None and high <= rule.maximum
                or rule.maximum is None)
            if within:
                reasons.append(Reason(f"company size {profile['company_size']}", rule.points))
    title = profile.get("job_title", "")
    if title:
        for rule in rules.job_title:
            m = rule.pattern.search(title)
            if m:
                reasons.append(Reason(f'job title "{m.group().lower()}"', rule.points))
    domain = domain_of(email)
    if domain:
        kind = kind_of_domain(domain)
        if kind in rules.email:
            reasons.append(Reason(EMAIL_LABELS[kind], rules.email[kind]))
        for listed in rules.domain_lists:
            if on_list(domain, listed.domains):
                reasons.append(Reason(f"{listed.label} ({domain})", listed.points))
    return [r for r in reasons if r.points]


def engagement_reasons(requests: Iterable[Request], rules: Rules, now: datetime) -> list[Reason]:
    """Points per different resource requested, by type, more for the 2nd and 3rd, decayed."""
    latest: dict[str, Request] = {}
    order: list[str] = []
    for request in sorted(requests, key=lambda r: r.at):
        if request.resource_id not in latest:
            order.append(request.resource_id)
        latest[request.resource_id] = request
    reasons = []
    for n, resource_id in enumerate(order, 1):
        request = latest[resource_id]
        points = rules.resource_types.get(request.resource_type, 0)
        label = f"{request.resource_type} {resource_id}"
        if n >= 2 and n - 2 < len(rules.more_resources):
            points += rules.more_resources[n - 2]
            label += f" ({ORDINALS.get(n, f'{n}th')} resource)"
        if not points:
            continue
        age_days = max(0.0, (now - request.at).total_seconds() / DAY_SECONDS)
        decayed = points * 0.5 ** (age_days / rules.half_life_days)
        if age_days >= 1:
            label += f", {int(age_days)} days ago"
        reasons.append(Reason(label, round(decayed, 1)))
    return reasons


def score_lead(profile: Mapping[str, str], email: str, requests: Iterable[Request], rules: Rules,
               now: datetime, fit: Iterable[Reason] | None = None) -> Scored:
    """The lead's fit, engagement and score as of ``now``, with the reasons. ``fit``: the fit
    reasons already worked out for this profile and email domain (a rescore reuses them)."""
    fit = list(fit) if fit is not None else fit_reasons(profile, email, rules)
    engaged = engagement_reasons(requests, rules, now)
    fit_value = _clamp(sum(r.points for r in fit))
    engagement_value = _clamp(sum(r.points for r in engaged))
    score = _clamp((fit_value * rules.fit_weight + engagement_value * rules.engagement_weight) / 100)
    return Scored(fit_value, engagement_value, score, tuple(fit), tuple(engaged), rules.version, now)


@dataclass(frozen=True)
class Gap:
    """How far a lead is below the MQL threshold, and which kinds of rule could close it."""

    points: int
    options: tuple[tuple[str, int], ...]


def gap_to_mql(fit: int, engagement: int, score: int, fired: Iterable[str], rules: Rules) -> Gap | None:
    """None when the score is at or over the threshold; else the points missing and, per kind
    of rule not yet fired, the most score points it could add (largest first)."""
    if score >= rules.mql_threshold or rules.mql_threshold > 100:
        return None
    fired_text = " ".join(fired)
    fit_room = 100 - fit
    options: dict[str, float] = {}

    def offer(name: str, fit_points: float) -> None:
        gain = min(fit_points, fit_room) * rules.fit_weight / 100
        if gain > 0:
            options[name] = max(options.get(name, 0), gain)

    if "industry " not in fired_text:
        offer("an industry in the rules (" + ", ".join(
            v for rule in rules.industry if rule.points > 0 for v in rule.values) + ")",
            max((rule.points for rule in rules.industry), default=0))
    if "company size " not in fired_text:
        offer("a company size in the rules", max((rule.points for rule in rules.company_size), default=0))
    if "job title " not in fired_text:
        best = max(rules.job_title, key=lambda rule: rule.points, default=None)
        if best is not None:
            offer("a job title with " + ", ".join(f'"{w}"' for w in best.words[:4]), best.points)
    if "company address" not in fired_text:
        offer("a company email address", rules.email.get("company_domain", 0))
    for listed in rules.domain_lists:
        if listed.label not in fired_text:
            offer(f"a domain on the {listed.label} list", listed.points)
    if rules.resource_types:
        kind, points = max(rules.resource_types.items(), key=lambda item: item[1])
        bonus = max(rules.more_resources, default=0)
        gain = min(points + bonus, 100 - engagement) * rules.engagement_weight / 100
        if gain > 0:
            options[f"another resource (a {kind} gives the most)"] = gain
    ranked = sorted(((name, round(gain)) for name, gain in options.items() if round(gain) > 0),
                    key=lambda item: -item[1])
    return Gap(rules.mql_threshold - score, tuple(ranked))
