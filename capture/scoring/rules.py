"""The scoring rules marketers write in ``content/scoring.yml``, read and checked.

:func:`load_rules` returns :class:`Rules` or raises :class:`RulesError` listing every problem
at once, each with the file, the line and the field ("scoring.yml line 14: points: expected a
whole number, got 'ten'"). ``leadgate check``, the site build and ``leadgate serve`` all read
the rules through here. A missing file means no scoring rules: every score stays 0.

A rules version is the SHA-256 (first 12 hex digits) of the rules as read, domain lists
included: a stored score names the version that gave it, and the rules of each version are
kept in the database (``rules_versions``), so a score can be replayed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = "scoring.yml"
MAX_POINTS = 100
MAX_WORDS = 50
MAX_RULES = 100
LABEL_MAX = 80
#: A company size choice of leadgate.yml: "201-1000" or "5000+".
SIZE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)|\+)\s*$")


class RulesError(Exception):
    """Rules that cannot be used; each problem names the file, the line and the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class WordRule:
    """Points when any of ``words`` stands as a whole word (or phrase) in the job title."""

    words: tuple[str, ...]
    points: int

    @cached_property  # read on every post
    def pattern(self) -> re.Pattern[str]:
        return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in self.words) + r")\b", re.I)


@dataclass(frozen=True)
class ListRule:
    """Points when the value is one of ``values`` (industries), compared without case."""

    values: tuple[str, ...]
    points: int


@dataclass(frozen=True)
class SizeRule:
    """Points when the company size chosen lies within ``minimum``–``maximum`` employees."""

    minimum: int
    maximum: int | None
    points: int


@dataclass(frozen=True)
class DomainList:
    """Points when the email's domain is on a list the marketer keeps (customers, competitors)."""

    label: str
    file: str
    domains: frozenset[str]
    points: int


@dataclass(frozen=True)
class Rules:
    """Everything :mod:`capture.scoring.score` needs; :data:`NO_RULES` when there is no file."""

    mql_threshold: int = 60
    fit_weight: int = 50
    engagement_weight: int = 50
    industry: tuple[ListRule, ...] = ()
    company_size: tuple[SizeRule, ...] = ()
    job_title: tuple[WordRule, ...] = ()
    email: dict[str, int] = field(default_factory=dict)
    domain_lists: tuple[DomainList, ...] = ()
    half_life_days: float = 30.0
    resource_types: dict[str, int] = field(default_factory=dict)
    more_resources: tuple[int, ...] = ()
    version: str = "none"

    def to_json(self) -> str:
        """The rules as stored under their version, for replaying a score later."""
        data = asdict(self)
        for rule in data["domain_lists"]:
            rule["domains"] = sorted(rule["domains"])
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Rules:
        data = json.loads(text)
        return cls(
            **{k: v for k, v in data.items() if k not in (
                "industry", "company_size", "job_title", "domain_lists", "more_resources")},
            industry=tuple(ListRule(tuple(r["values"]), r["points"]) for r in data["industry"]),
            company_size=tuple(SizeRule(**r) for r in data["company_size"]),
            job_title=tuple(WordRule(tuple(r["words"]), r["points"]) for r in data["job_title"]),
            domain_lists=tuple(DomainList(r["label"], r["file"], frozenset(r["domains"]), r["points"])
                               for r in data["domain_lists"]),
            more_resources=tuple(data["more_resources"]))


NO_RULES = Rules(mql_threshold=101, version="none")
EMAIL_KINDS = ("company_domain", "free_mail", "disposable")


def company_size_range(choice: str) -> tuple[int, int | None] | None:
    """(minimum, maximum or None) of a company size choice such as "201-1000" or "5000+"."""
    m = SIZE.match(choice)
    if not m:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


class _Reader:
    """Walks the YAML nodes of the file, keeping each problem with the line it is on."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[str] = []
        self._loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, where: str, message: str) -> None:
        self.problems.append(f"{self.name} line {node.start_mark.line + 1}: {where}: {message}")

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, where: str, allowed: dict[str, bool]) -> dict[str, yaml.Node] | None:
        """The keys of a mapping node; unknown keys and missing required ones are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, where or "file", f"expected a mapping of {', '.join(allowed)}")
            return None
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(self.value(key_node))
            if key not in allowed:
                self.fail(key_node, f"{where}.{key}" if where else key,
                          f"unknown field (expected one of {', '.join(allowed)})")
            elif key in found:
                self.fail(key_node, f"{where}.{key}" if where else key, "given twice")
            else:
                found[key] = value_node
        for key, required in allowed.items():
            if required and key not in found:
                self.fail(node, f"{where}.{key}" if where else key, "is missing")
        return found

    def sequence(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, where, "expected a list")
            return []
        if len(node.value) > MAX_RULES:
            self.fail(node, where, f"at most {MAX_RULES} entries")
        return list(node.value)

    def integer(self, node: yaml.Node, where: str, low: int = -MAX_POINTS, high: int = MAX_POINTS) -> int | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(node, where, f"expected a whole number, got {self._shown(node)}")
            return None
        if not low <= value <= high:
            self.fail(node, where, f"expected a whole number from {low} to {high}, got {value}")
            return None
        return value

    def number(self, node: yaml.Node, where: str, low: float, high: float) -> float | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, where, f"expected a number, got {self._shown(node)}")
            return None
        if not low <= value <= high:
            self.fail(node, where, f"expected a number from {low:g} to {high:g}, got {value:g}")
            return None
        return float(value)

    def texts(self, node: yaml.Node, where: str, limit: int = LABEL_MAX) -> tuple[str, ...]:
        items = self.sequence(node, where)
        out = []
        for item in items:
            value = self.value(item) if isinstance(item, yaml.ScalarNode) else None
            if not isinstance(value, str) or not value.strip():
                self.fail(item, where, f"expected text, got {self._shown(item)}")
            elif len(value) > limit:
                self.fail(item, where, f"at most {limit} characters")
            else:
                out.append(value.strip())
        if not items:
            self.fail(node, where, "expected at least one entry")
        return tuple(out)

    def _shown(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode):
            return f"'{node.value}'"
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def load_rules(content_dir: Path | str, *, resource_types: tuple[str, ...] = (),
               industries: tuple[str, ...] = (), company_sizes: tuple[str, ...] = ()) -> Rules:
    """Read ``content/scoring.yml`` (:data:`NO_RULES` when absent), checked against the
    settings it refers to: resource types, industries and company sizes of leadgate.yml."""
    content_dir = Path(content_dir)
    path = content_dir / RULES_FILE
    if not path.exists():
        return NO_RULES
    raw = path.read_bytes()
    r = _Reader(RULES_FILE)
    try:
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise RulesError([f"{RULES_FILE}: file: is not UTF-8 text"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise RulesError([f"{RULES_FILE}{line}: file: is not valid YAML ({getattr(e, 'problem', e)})"]) from None
    if root is None:
        raise RulesError([f"{RULES_FILE} line 1: file: is empty; delete it to score nothing"])
    top = r.mapping(root, "", {"mql_threshold": True, "weights": True, "fit": True, "engagement": True})
    if top is None:
        raise RulesError(r.problems)
    values: dict[str, Any] = {}
    digest = hashlib.sha256(raw)
    if "mql_threshold" in top:
        values["mql_threshold"] = r.integer(top["mql_threshold"], "mql_threshold", 1, 100)
    if "weights" in top:
        weights = r.mapping(top["weights"], "weights", {"fit": True, "engagement": True})
        if weights and set(weights) == {"fit", "engagement"}:
            fit = r.integer(weights["fit"], "weights.fit", 0, 100)
            engagement = r.integer(weights["engagement"], "weights.engagement", 0, 100)
            if fit is not None and engagement is not None:
                if fit + engagement != 100:
                    r.fail(top["weights"], "weights", f"fit and engagement must add up to 100, "
                           f"not {fit + engagement}")
                values.update(fit_weight=fit, engagement_weight=engagement)
    if "fit" in top:
        values.update(_fit(r, top["fit"], content_dir, digest, industries, company_sizes))
    if "engagement" in top:
        values.update(_engagement(r, top["engagement"], resource_types))
    if r.problems:
        raise RulesError(r.problems)
    return Rules(**values, version=digest.hexdigest()[:12])


def _fit(r: _Reader, node: yaml.Node, content_dir: Path, digest: Any,
         industries: tuple[str, ...], company_sizes: tuple[str, ...]) -> dict[str, Any]:
    fit = r.mapping(node, "fit", {"industry": False, "company_size": False, "job_title": False,
                                  "email": False, "domain_lists": False})
    if fit is None:
        return {}
    out: dict[str, Any] = {}
    known_industries = {i.lower() for i in industries}
    rules: list[Any] = []
    for item in r.sequence(fit["industry"], "fit.industry") if "industry" in fit else ():
        entry = r.mapping(item, "fit.industry", {"industries": True, "points": True})
        if entry and len(entry) == 2:
            names = r.texts(entry["industries"], "fit.industry.industries", 100)
            for name in names:
                if known_industries and name.lower() not in known_industries:
                    r.fail(entry["industries"], "fit.industry.industries",
                           f"'{name}' is not an industry of leadgate.yml ({', '.join(industries)})")
            points = r.integer(entry["points"], "fit.industry.points")
            if points is not None:
                rules.append(ListRule(names, points))
    out["industry"] = tuple(rules)
    rules = []
    for item in r.sequence(fit["company_size"], "fit.company_size") if "company_size" in fit else ():
        entry = r.mapping(item, "fit.company_size", {"min": True, "max": False, "points": True})
        if entry and {"min", "points"} <= set(entry):
            low = r.integer(entry["min"], "fit.company_size.min", 1, 10_000_000)
            high = r.integer(entry["max"], "fit.company_size.max", 1, 10_000_000) if "max" in entry else None
            if low is not None and high is not None and high < low:
                r.fail(entry["max"], "fit.company_size.max", f"{high} is below min {low}")
            points = r.integer(entry["points"], "fit.company_size.points")
            if low is not None and points is not None:
                rules.append(SizeRule(low, high, points))
    for choice in company_sizes:
        if company_size_range(choice) is None:
            r.problems.append(f"leadgate.yml: company_sizes: '{choice}' is not a range such as "
                              "51-200 or 5000+, which the company size rules need")
    out["company_size"] = tuple(rules)
    rules = []
    for item in r.sequence(fit["job_title"], "fit.job_title") if "job_title" in fit else ():
        entry = r.mapping(item, "fit.job_title", {"words": True, "points": True})
        if entry and len(entry) == 2:
            words = r.texts(entry["words"], "fit.job_title.words")
            if len(words) > MAX_WORDS:
                r.fail(entry["words"], "fit.job_title.words", f"at most {MAX_WORDS} words")
            points = r.integer(entry["points"], "fit.job_title.points")
            if words and points is not None:
                rules.append(WordRule(tuple(w.lower() for w in words), points))
    out["job_title"] = tuple(rules)
    if "email" in fit:
        email = r.mapping(fit["email"], "fit.email", dict.fromkeys(
            ("company_domain", "free_mail", "disposable"), False))
        out["email"] = {k: p for k, v in (email or {}).items()
                        if (p := r.integer(v, f"fit.email.{k}")) is not None}
    lists = []
    for item in r.sequence(fit["domain_lists"], "fit.domain_lists") if "domain_lists" in fit else ():
        entry = r.mapping(item, "fit.domain_lists", {"label": True, "file": True, "points": True})
        if not entry or len(entry) != 3:
            continue
        label = r.value(entry["label"])
        if not isinstance(label, str) or not label.strip() or len(label) > LABEL_MAX:
            r.fail(entry["label"], "fit.domain_lists.label", f"expected text of 1 to {LABEL_MAX} characters")
            continue
        points = r.integer(entry["points"], "fit.domain_lists.points")
        name = r.value(entry["file"])
        path = content_dir / str(name)
        if not isinstance(name, str) or not path.resolve().is_relative_to(content_dir.resolve()):
            r.fail(entry["file"], "fit.domain_lists.file", "expected a path inside the content folder")
            continue
        if not path.is_file():
            r.fail(entry["file"], "fit.domain_lists.file", f"{name} does not exist")
            continue
        domains = _domain_file(r, path, name)
        digest.update(path.read_bytes())
        if points is not None:
            lists.append(DomainList(label.strip(), name, domains, points))
    out["domain_lists"] = tuple(lists)
    return out


def _domain_file(r: _Reader, path: Path, name: str) -> frozenset[str]:
    """One domain a line; blank lines and ``#`` comments are skipped."""
    domains = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip().lower()
        if not text:
            continue
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", text):
            r.problems.append(f"{name} line {number}: domain: '{text[:80]}' is not a domain such as example.com")
        else:
            domains.add(text)
    return frozenset(domains)


def _engagement(r: _Reader, node: yaml.Node, resource_types: tuple[str, ...]) -> dict[str, Any]:
    engagement = r.mapping(node, "engagement", {"half_life_days": True, "resource_types": True,
                                                "more_resources": False})
    if engagement is None:
        return {}
    out: dict[str, Any] = {}
    if "half_life_days" in engagement:
        half_life = r.number(engagement["half_life_days"], "engagement.half_life_days", 1, 3650)
        if half_life is not None:
            out["half_life_days"] = half_life
    if "resource_types" in engagement:
        types_node = engagement["resource_types"]
        points = r.mapping(types_node, "engagement.resource_types",
                           dict.fromkeys(resource_types, False)) if resource_types else None
        if points is None and not resource_types:
            points = {str(r.value(k)): v for k, v in getattr(types_node, "value", [])}
        out["resource_types"] = {
            kind: p for kind, v in (points or {}).items()
            if (p := r.integer(v, f"engagement.resource_types.{kind}", 0, MAX_POINTS)) is not None}
    if "more_resources" in engagement:
        out["more_resources"] = tuple(
            p for i, item in enumerate(r.sequence(engagement["more_resources"], "engagement.more_resources"))
            if (p := r.integer(item, f"engagement.more_resources[{i + 1}]", 0, MAX_POINTS)) is not None)
    return out
