"""Security headers as helmet sets them, tightened for a JSON API; HSTS only behind TLS."""

from __future__ import annotations

# A JSON API renders nothing: nothing may load, frame it, or submit to it.
JSON_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# The interactive docs page loads Swagger UI from the gateway itself and starts it with an inline script.
DOCS_CSP = (
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'"
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", JSON_CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"origin-agent-cluster", b"?1"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-dns-prefetch-control", b"off"),
    (b"x-download-options", b"noopen"),
    (b"x-frame-options", b"DENY"),
    (b"x-permitted-cross-domain-policies", b"none"),
    (b"x-xss-protection", b"0"),
)
# What a response must not advertise about our stack.
REMOVED_HEADERS = frozenset({b"x-powered-by", b"server"})


def add_security_headers(headers: list[tuple[bytes, bytes]], https: bool) -> list[tuple[bytes, bytes]]:
    """The response headers plus each security header it does not set (a page may relax its CSP)."""
    present = {name.lower() for name, _ in headers}
    out = [h for h in headers if h[0].lower() not in REMOVED_HEADERS]
    out.extend(h for h in SECURITY_HEADERS if h[0] not in present)
    if https and HSTS[0] not in present:
        out.append(HSTS)
    return out
