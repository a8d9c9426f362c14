"""Webhook URL checks, shared by the API (at submission) and the worker (at every delivery).

A webhook URL must be ``http`` or ``https``, name a host, carry no credentials, and
resolve only to public unicast addresses: every range of the IANA special-purpose
registries (loopback, private, link-local, shared/CGNAT, documentation, benchmarking,
ORCHID, discard, ...), multicast, reserved space, and the IPv6 transition forms that
carry an IPv4 address (IPv4-mapped/-compatible, 6to4, Teredo, NAT64: refused as ranges,
and their embedded IPv4 judged too) are refused, so a tenant cannot make the service
call into its own network (SSRF). The list is explicit (``_V4_SPECIAL``/``_V6_SPECIAL``),
not only ``ipaddress.is_global``. ``settings.webhooks.allow_private`` lifts the
address rule (tests, single-machine installs); multicast and unspecified stay refused.

DNS rebinding: a name may resolve to a public address at submission and to 127.0.0.1 at
delivery. So the sender resolves again at each attempt, checks every address, and then
connects to the address it checked (``ResolvedUrl.pinned_url``), sending the original
``Host`` header and, for https, the original name as SNI and for certificate checks.
Checking one answer and letting the HTTP client resolve the name again would leave the
race open.

At submission a name that does not resolve (yet) is accepted: the delivery-time check is
the one that guards the network, and DNS may legitimately change before the job ends.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class WebhookUrlRefused(ValueError):
    """The URL may not be called; ``reason`` says why in words a user understands.

    ``retryable`` is True only for failures that may pass later (the name does not resolve).
    """

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class ParsedUrl:
    url: str
    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int
    path_and_query: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class ResolvedUrl:
    """A URL whose host resolved to ``address``, which passed the checks."""

    parsed: ParsedUrl
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.parsed.scheme}://{host}:{self.parsed.port}{self.parsed.path_and_query}"

    @property
    def host_header(self) -> str:
        return self.parsed.host_header

    @property
    def sni_hostname(self) -> str | None:
        """The name to present for TLS (None for an IP literal: nothing to verify by name)."""
        if self.parsed.scheme != "https" or _ip_literal(self.parsed.host) is not None:
            return None
        return self.parsed.host


def parse_webhook_url(url: str) -> ParsedUrl:
    """Syntax checks only (no DNS): scheme, host, port, no credentials."""
    if not isinstance(url, str) or not url:
        raise WebhookUrlRefused("the webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise WebhookUrlRefused("the webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"the webhook URL is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise WebhookUrlRefused(f"the webhook URL must use http or https, not {parts.scheme or 'no scheme'!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookUrlRefused("the webhook URL must not contain credentials (user:password@)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise WebhookUrlRefused("the webhook URL has no host")
    if port == 0:
        raise WebhookUrlRefused("the webhook URL's port must be 1-65535")
    path_and_query = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return ParsedUrl(url=url, scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme],
                     path_and_query=path_and_query)


# Non-global ranges from the IANA IPv4 and IPv6 Special-Purpose Address Registries (and
# the multicast / reserved space), checked by this explicit list rather than only by
# ``ipaddress.is_global``, whose answer varies across Python versions. Each entry is
# (network, what it is). A webhook may call none of them.
_V4_SPECIAL = [
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address (TEST-NET-1)"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address (TEST-NET-2)"),
    ("203.0.113.0/24", "a documentation address (TEST-NET-3)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
]
_V6_SPECIAL = [
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0/96", "an IPv4-mapped address"),
    ("::/96", "an IPv4-compatible address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("100:0:0:1::/64", "a dummy-prefix address"),
    ("2001::/32", "a Teredo address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001:10::/28", "an ORCHID address"),
    ("2001:20::/28", "an ORCHIDv2 address"),
    ("2001::/23", "an IETF protocol assignment address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("2002::/16", "a 6to4 address"),
    ("5f00::/16", "an SRv6 SID address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
_V4_NETWORKS = [(ipaddress.IPv4Network(n), what) for n, what in _V4_SPECIAL]
_V6_NETWORKS = [(ipaddress.IPv6Network(n), what) for n, what in _V6_SPECIAL]
# Everything outside global unicast (2000::/3) is reserved or special in IPv6.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def special_range(address: IPAddress) -> str | None:
    """What non-global range ``address`` is in (words and network), or None."""
    networks = _V4_NETWORKS if address.version == 4 else _V6_NETWORKS
    for network, what in networks:
        if address in network:
            return f"{what} ({network})"
    if address.version == 6 and address not in _V6_GLOBAL_UNICAST:
        return "a reserved address (outside 2000::/3)"
    if not address.is_global:
        return "a reserved or non-public address"
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address carries: IPv4-mapped/-compatible,
    6to4 (2002:AABB:CCDD::), Teredo (the client address) and NAT64 well-known prefix."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return low32
    if address in ipaddress.IPv6Network("::/96") and int(address) > 1:
        return low32
    return None


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``address`` may not be called, or None when it may.

    Transition addresses (IPv4-mapped/-compatible, 6to4, Teredo, NAT64) are refused as
    ranges and their embedded IPv4 address is judged too: with ``allow_private`` only
    the embedded address decides (``::ffff:127.0.0.1`` is then as good as ``127.0.0.1``).
    """
    embedded = embedded_ipv4(address)
    if embedded is not None:
        reason = address_refusal(embedded, allow_private=allow_private)
        if reason is not None:
            return f"{address} (which carries {embedded}): {reason}"
        if allow_private:
            return None
    if address.is_unspecified or (address.version == 4 and address in _V4_NETWORKS[0][0]):
        return f"{address} is the unspecified address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if allow_private:
        return None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    special = special_range(address)
    if special is not None:
        if embedded is not None:
            return f"{address} is {special}, a tunnelled form of {embedded}"
        return f"{address} is {special}"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_webhook_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> ResolvedUrl:
    """Parse, resolve and check every address; the first address is the one to connect to.

    Raises ``WebhookUrlRefused`` (``retryable=True`` when the name does not resolve).
    """
    parsed = parse_webhook_url(url)
    _refuse_local_name(parsed.host, allow_private)
    literal = _ip_literal(parsed.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = resolver(parsed.host, parsed.port)
        except (OSError, UnicodeError) as exc:
            raise WebhookUrlRefused(f"the webhook host {parsed.host!r} does not resolve: {exc}",
                                    retryable=True) from exc
        addresses = []
        for answer in answers:
            address = _ip_literal(answer.split("%", 1)[0])  # drop an IPv6 zone id
            if address is not None and address not in addresses:
                addresses.append(address)
        if not addresses:
            raise WebhookUrlRefused(f"the webhook host {parsed.host!r} does not resolve", retryable=True)
    # Every answer must pass: a name that also points inside the network is refused
    # whichever address the sender would have picked.
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason is not None:
            raise WebhookUrlRefused(f"the webhook host {parsed.host!r} resolves to {reason}; "
                                    "webhooks may only call public addresses")
    return ResolvedUrl(parsed=parsed, address=addresses[0])


def validate_webhook_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """The submission-time check: refuse what can never be delivered; a name that does
    not resolve now is accepted (the delivery re-checks)."""
    try:
        resolve_webhook_url(url, allow_private=allow_private, resolver=resolver)
    except WebhookUrlRefused as exc:
        if not exc.retryable:
            raise


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refuse_local_name(host: str, allow_private: bool) -> None:
    # Names that resolve locally whatever DNS says (RFC 6761); refused before any lookup.
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise WebhookUrlRefused(f"the webhook host {host!r} is this machine; webhooks may only call public addresses")
