"""Where a lead came from, and the little we keep about the network they came from.

The page script fills ``utm_*``, ``referrer`` and ``landing_page`` at submit time. With
JavaScript off those fields arrive empty; then the ``Referer`` header of the form post is the
landing page itself, and when it is one of the site's own pages its query string still holds
the campaign's ``utm_*``. (Browsers send the full URL only to the same origin by default;
a site on another origin yields just its origin, so nothing is recovered there.)
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from capture.fields import SOURCE_FIELDS, URL_MAX, UTM_FIELDS, UTM_MAX


@lru_cache(maxsize=256)  # every post asks for the service's own origin and the page's
def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, or None for anything that is not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def is_site_page(url: str, own_origin: str, allowed_origins: Iterable[str], site_url: str) -> bool:
    """True when the URL is a page of the site: same origin, an allowed origin, or under SITE_URL."""
    origin = origin_of(url)
    if origin is None:
        return False
    if origin == origin_of(own_origin) or origin in allowed_origins:
        return True
    if site_url and origin == origin_of(site_url):
        base = urlsplit(site_url).path or "/"
        path = urlsplit(url).path or "/"
        return path.startswith(base if base.endswith("/") else base + "/") or path == base
    return False


def _clean(value: str, limit: int) -> str:
    """Recovered values are not typed by the visitor: drop control characters and cut to size."""
    return "".join(c for c in value if unicodedata.category(c) not in ("Cc", "Cs"))[:limit].strip()


def source_fields(posted: Mapping[str, str], referer: str | None,
                  trusted: Callable[[str], bool]) -> dict[str, str]:
    """The source fields to store: as posted, or recovered from the Referer when they are
    empty and ``trusted(referer)`` says it is a page of the site (asked only then)."""
    fields = {name: posted.get(name, "") for name in SOURCE_FIELDS}
    if any(fields[name] for name in (*UTM_FIELDS, "landing_page")) or not referer or not trusted(referer):
        return fields
    query = parse_qs(urlsplit(referer).query)
    for name in UTM_FIELDS:
        if query.get(name):
            fields[name] = _clean(query[name][0], UTM_MAX)
    fields["landing_page"] = _clean(referer, URL_MAX)
    return fields


@lru_cache(maxsize=1024)  # the ipaddress module is slow, and proxies and NATs repeat addresses
def ip_prefix(address: str | None) -> str | None:
    """The visitor's network, never the address: /24 for IPv4, /48 for IPv6 (GDPR Recital 30)."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
