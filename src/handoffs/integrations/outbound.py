"""Where the service may send a request that an account's admin addressed: PSA and chat webhook URLs.

An admin types these URLs, and the worker then posts credentials and escalations
to them, so a URL naming ``127.0.0.1`` or ``169.254.169.254`` would make the
service a way into its own network (SSRF). One policy, applied twice:

- when a URL is **saved**: https only, no user name or password in it, no IP
  literal in a loopback, private, link-local, reserved or multicast range (IPv4
  inside IPv6 included), no numeric host other than a plain dotted IPv4
  address (``2130706433``, ``0x7f.1``, ``127.1`` all mean 127.0.0.1 to the
  resolver) — a ``ValueError`` naming the field, which the API answers as a 400;
- when a connection is **made** (:class:`GuardedTransport`): the same checks on
  the request's URL, then the host is resolved, *every* address it resolves to
  is checked, and the connection goes to one of those checked addresses (TLS
  still verifies the certificate for, and sends SNI with, the name). DNS
  cannot answer a public address for the check and a private one for the
  connection: there is one lookup. Redirects are never followed.

``OUTBOUND_ALLOWED_HOSTS`` names what an installation does allow: a host name,
an IP address or a network (``cw.internal.example``, ``10.20.0.0/16``,
``127.0.0.1``). Such hosts may be private and may use plain http: tests and
development run fake PSA and chat servers on 127.0.0.1, and some MSPs run
ConnectWise on their own network. The list is installation-wide: every account
may then address those hosts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``host, port -> the addresses it resolves to``; the event loop's ``getaddrinfo`` unless a test swaps it.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Two of the refusals ``check_url`` words its own way.
USERINFO = "a user name or password in the address"
PLAIN_HTTP = "plain http"
#: A last label made of digits, or hex (``0x7f``): the resolver reads the whole host as a number.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


class OutboundRefused(httpx.TransportError):
    """A request the policy does not allow; no connection was made.

    ``why`` is a noun phrase for people (``a private network address``); it never holds
    the URL (a chat webhook's path is its secret), only ``host`` does.
    """

    def __init__(self, why: str, host: str) -> None:
        super().__init__(f"{host or 'the host'}: {why} is not allowed")
        self.why = why
        self.host = host


class HostNotFound(httpx.ConnectError):
    """The host name does not resolve (no connection was attempted)."""


def address_kind(address: IPAddress) -> str | None:
    """What is wrong with connecting to ``address`` (``a loopback address``, …); None when it is public.

    IPv4 carried inside IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64) is judged as the IPv4
    address it carries: that is where the packets go.
    """
    for candidate in (*_embedded_ipv4(address), address):
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_private or not candidate.is_global:
            return "a private network address"
        if candidate.is_reserved:
            return "a reserved address"
    return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, None for a name; ``OutboundRefused`` for a number the
    resolver would read as an address in a form we do not (``2130706433``, ``0x7f.1``, ``127.1``)."""
    host = _normal_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise OutboundRefused("an address that is not a valid IPv6 address", host)
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        raise OutboundRefused("a numeric host that is not a plain dotted IPv4 address", host)
    return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which hosts outbound PSA and chat calls may reach, beyond public https ones."""

    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    entries: tuple[str, ...] = ()
    """The allow-list as configured, for messages."""

    @classmethod
    def parse(cls, text: str) -> OutboundPolicy:
        """``OUTBOUND_ALLOWED_HOSTS``: names, addresses and networks, separated by commas or spaces."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        entries = tuple(e for e in re.split(r"[,\s]+", text.strip()) if e)
        for entry in entries:
            normal = _normal_host(entry)
            try:
                networks.append(ipaddress.ip_network(normal, strict=False))
                continue
            except ValueError:
                pass
            if "/" in normal or ":" in normal or not re.fullmatch(r"[a-z0-9_.-]+", normal):
                raise ValueError(f"OUTBOUND_ALLOWED_HOSTS: {entry!r} is not a host name, address or network")
            names.add(normal)
        return cls(frozenset(names), tuple(networks), entries)

    def allows(self, host: str, address: IPAddress | None = None) -> bool:
        """Whether the allow-list names ``host``, or holds ``address`` (the literal or a resolved one)."""
        if _normal_host(host) in self.allowed_names:
            return True
        return address is not None and any(address in network for network in self.allowed_networks)

    # -- the URL, when it is saved and again when it is requested --------------------------------

    def refusal(self, scheme: str, host: str, *, has_userinfo: bool) -> str | None:
        """What is wrong with a URL of this scheme and host (a noun phrase), None when it may be used.

        Names are not resolved here: what a name resolves to is checked when connecting.
        """
        if has_userinfo:
            return USERINFO
        try:
            literal = literal_address(host)
        except OutboundRefused as refused:
            return refused.why
        allowed = self.allows(host, literal)
        if literal is not None and not allowed and (kind := address_kind(literal)) is not None:
            return kind
        if scheme not in ("https", "http"):
            return "a scheme other than https"
        if scheme == "http" and not allowed:
            return PLAIN_HTTP
        return None

    def check_url(self, url: str, field: str, *, example: str = "https://…", max_length: int = 2000) -> str:
        """``url`` stripped, or ``ValueError`` whose message names ``field`` and says what is wrong
        (without repeating the URL, which may hold a secret)."""
        url = url.strip()
        if not url:
            raise ValueError(f"{field} is empty")
        if len(url) > max_length:
            raise ValueError(f"{field} is longer than {max_length:,} characters")
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise ValueError(f"{field} must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            raise ValueError(f"{field} is not a valid URL") from None
        if parts.scheme not in {"https", "http"} or not host:
            raise ValueError(f"{field} must be a web address such as {example}")
        has_userinfo = parts.username is not None or parts.password is not None or "@" in parts.netloc
        why = self.refusal(parts.scheme, host, has_userinfo=has_userinfo)
        if why == USERINFO:
            raise ValueError(f"{field} must not contain a user name or password")
        if why == PLAIN_HTTP:
            allowed = f" (plain http only for {', '.join(self.entries)})" if self.entries else ""
            raise ValueError(f"{field} must use https{allowed}")
        if why is not None:
            raise ValueError(f"{field} must name a public host, not {why}")
        return url

    def check_request(self, url: httpx.URL) -> None:
        """The saved-URL checks again, on the URL about to be requested (rows saved under another
        policy, a URL built from settings): ``OutboundRefused`` when it may not be."""
        why = self.refusal(url.scheme, url.host, has_userinfo=bool(url.userinfo))
        if why is not None:
            raise OutboundRefused(why, url.host)

    def check_address(self, host: str, address: IPAddress) -> None:
        """``OutboundRefused`` when ``host`` resolved to ``address`` and the policy does not allow it."""
        if self.allows(host, address):
            return
        kind = address_kind(address)
        if kind is not None:
            raise OutboundRefused(kind, host)

    # -- clients ----------------------------------------------------------------------------------

    def client(
        self, *, timeout: httpx.Timeout | float, resolver: Resolver | None = None
    ) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose every connection is checked by this policy; redirects are not
        followed. Environment proxies (``HTTPS_PROXY``) are not used: through a proxy the address
        the name resolves to could not be checked."""
        return httpx.AsyncClient(
            transport=GuardedTransport(self, resolver=resolver), timeout=timeout, follow_redirects=False
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host once, refuses it when any address is not allowed, connects to a checked one."""

    def __init__(
        self, policy: OutboundPolicy, resolver: Resolver, inner: httpcore.AsyncNetworkBackend
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        # Any: a name answering one public and one private address must not get the private one.
        for address in addresses:
            self._policy.check_address(host, address)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                failure = exc
        assert failure is not None  # _addresses never returns an empty list
        raise failure

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:  # noqa: ASYNC109
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError:  # socket.gaierror: no such name, or no resolver
            raise HostNotFound(f"{host} does not resolve") from None
        if not addresses:
            raise HostNotFound(f"{host} does not resolve")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("a unix socket", "")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool connecting through :class:`_GuardedBackend`.

    A kept-alive connection stays with the address it was made to, so reusing it never
    skips the check. httpx takes no network backend, hence the pool is replaced; the tests
    that refuse ``localhost`` at connect time would notice if httpx stopped using it.
    """

    def __init__(self, policy: OutboundPolicy, *, resolver: Resolver | None = None) -> None:
        super().__init__()
        self._policy = policy
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver or system_resolver, httpcore.AnyIOBackend()),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_request(request.url)
        return await super().handle_async_request(request)
