"""Where a controller's webhook may point: checked when the URL is imported and again, after a
fresh DNS lookup, each time a notice is delivered (a name can be pointed elsewhere after it was
accepted).

A webhook URL is ``https://`` (``http://`` only to this host, loopback). It must not name, or
resolve to, an address a POST from this service could harm or read from:

- **always refused**: the unspecified address (``0.0.0.0``, ``::``), link-local addresses
  (``169.254.0.0/16``, ``fe80::/10``), among them the cloud metadata services
  (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``), multicast and reserved ranges;
- **refused unless** ``[notify] allow_private_webhooks = true``: private networks
  (``10/8``, ``172.16/12``, ``192.168/16``, ``100.64/10``, ``fc00::/7``, ...), for a receiver
  inside the council's own network.

Loopback is allowed (a receiver on this host). An IPv4 address written inside IPv6
(``::ffff:169.254.169.254``) or in another notation (``2852039166``) is judged as the IPv4
address it is.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``socket.getaddrinfo``'s shape: what a test or a caller may pass instead of real DNS.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

#: Cloud instance metadata services: never a controller's receiver, whatever the setting.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: private in practice
#: What every refusal's message starts with (the digest and metrics count them by it).
REFUSED = "webhook address refused"


class WebhookAddressError(ValueError):
    """A webhook URL, or an address its host name resolves to, is not allowed."""


class HostUnresolved(WebhookAddressError):
    """The webhook's host name does not resolve now (no record, or the name system is down):
    worth trying again later, unlike a refusal."""


@dataclass(frozen=True, kw_only=True)
class WebhookTarget:
    """A checked webhook URL and the addresses it may be sent to (in the resolver's order)."""

    url: SplitResult
    host: str
    port: int
    addresses: tuple[str, ...]


def why_refused(ip: IpAddress, *, allow_private: bool) -> str | None:
    """Why a POST must not go to ``ip``, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return None
    if ip in METADATA:
        return "a cloud metadata service"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast or ip.is_reserved:
        return "a multicast or reserved address"
    if ip.is_private or ip in _SHARED or not ip.is_global:
        return None if allow_private else (
            "a private network address (set [notify] allow_private_webhooks = true for a "
            "receiver inside your own network)")
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_webhook(url: str, *, allow_private: bool, resolver: Resolver | None = socket.getaddrinfo,
                  require_resolution: bool = True) -> WebhookTarget:
    """The URL's target once every check passes; ``WebhookAddressError`` saying which failed.

    With ``resolver`` the host name is looked up and every address it gives is checked (one
    refused address refuses the URL: the receiver's own DNS decides which is used). A name that
    does not resolve is ``HostUnresolved`` when ``require_resolution`` (delivery: try again
    later), and let through when not (an import: the name may be registered later; delivery
    checks it then). Over plain http a name must resolve, to loopback only."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookAddressError(f"{REFUSED}: {url!r} is not an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookAddressError(f"{REFUSED}: the URL must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookAddressError(f"{REFUSED}: {url!r} has no usable port") from None
    literal = _literal(host)
    found: list[str] = []
    if literal is not None:
        found = [str(literal)]
    elif resolver is not None:
        try:
            found = sorted({str(info[4][0]).split("%")[0]
                            for info in resolver(host, port, proto=socket.IPPROTO_TCP)},
                           key=lambda a: (":" in a, a))
        except (OSError, UnicodeError) as exc:
            if require_resolution and parts.scheme == "https":
                raise HostUnresolved(f"webhook host {host} does not resolve "
                                     f"({type(exc).__name__})") from None
    elif host.lower() == "localhost":
        found = ["127.0.0.1"]
    for address in found:
        ip = ipaddress.ip_address(address)
        why = why_refused(ip, allow_private=allow_private)
        if why is not None:
            named = "is" if literal is not None else f"resolves to {address},"
            raise WebhookAddressError(f"{REFUSED}: {host} {named} {why}")
    if parts.scheme == "http":
        loopback = host.lower() == "localhost" or (
            bool(found) and all(ipaddress.ip_address(a).is_loopback for a in found))
        if not loopback:
            raise WebhookAddressError(f"{REFUSED}: must be https:// (plain http:// only to a "
                                      f"receiver on this host), not {url!r}")
    return WebhookTarget(url=parts, host=host, port=port, addresses=tuple(found))
