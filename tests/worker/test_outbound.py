"""The outbound policy's connection checks, through the HTTP client PSA and chat calls use:
a name is resolved once, every address is checked, and the connection goes to a checked one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from handoffs.config import ConfigError, Settings
from handoffs.integrations.outbound import IPAddress, OutboundPolicy, OutboundRefused, address_kind
from tests.support.fake_psa import FakePsa, fake_psa_server


@pytest.fixture
def psa() -> Iterator[FakePsa]:
    with fake_psa_server() as fake:
        yield fake


class Resolver:
    """A DNS that answers what the test says, and counts how often it is asked."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return [ipaddress.ip_address(a) for a in self.answers.pop(0)]


async def test_the_connection_goes_to_the_address_the_name_resolved_to_with_the_names_host_header(
    psa: FakePsa,
) -> None:
    dns = Resolver(["127.0.0.1"])
    policy = OutboundPolicy.parse("psa.example.test")  # an on-premises PSA, allowed by name
    async with policy.client(timeout=5, resolver=dns) as http:
        answer = await http.post(f"http://psa.example.test:{psa.port}/auth/token")
    assert answer.status_code == 200  # the system's DNS does not know the name: ours was used
    assert [c.headers["host"] for c in psa.calls] == [f"psa.example.test:{psa.port}"]
    assert dns.asked == ["psa.example.test"]  # once: what was checked is what was connected to


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["93.184.215.14", "10.0.0.5"], ["2606:4700::1111", "::ffff:169.254.169.254"]],
)
async def test_a_name_is_refused_when_any_address_it_resolves_to_is_internal(
    psa: FakePsa, answer: list[str]
) -> None:
    dns = Resolver(answer)
    async with OutboundPolicy().client(timeout=5, resolver=dns) as http:
        with pytest.raises(OutboundRefused) as refused:
            await http.post(f"https://rebind.example.test:{psa.port}/auth/token")
    assert refused.value.host == "rebind.example.test"
    assert dns.asked == ["rebind.example.test"]
    assert psa.calls == []


async def test_an_allowed_network_admits_the_addresses_in_it_and_no_others() -> None:
    policy = OutboundPolicy.parse("10.20.0.0/16")
    policy.check_address("cw.internal.example", ipaddress.ip_address("10.20.3.4"))
    with pytest.raises(OutboundRefused):
        policy.check_address("cw.internal.example", ipaddress.ip_address("10.21.3.4"))
    with pytest.raises(ValueError, match="must use https"):
        policy.check_url("http://cw.internal.example/", "base_url")  # http only for hosts it names


async def test_the_production_policy_refuses_loopback_http_and_redirect_following(psa: FakePsa) -> None:
    async with OutboundPolicy().client(timeout=5) as http:
        with pytest.raises(OutboundRefused, match="a loopback address"):
            await http.get(f"{psa.url}/internal-admin")
        assert http.follow_redirects is False
    assert psa.calls == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("127.0.0.2", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::a00:5", "a private network address"),  # NAT64 of 10.0.0.5
        ("2002:a00:5::", "a private network address"),  # 6to4 of 10.0.0.5
        ("fe80::1", "a link-local address"),
        ("::", "an unspecified address"),
        ("ff02::1", "a multicast address"),
        ("198.18.0.1", "a private network address"),  # benchmarking
        ("240.0.0.1", "a private network address"),
    ],
)
def test_addresses_are_judged_by_where_the_packets_go(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_a_malformed_allow_list_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOWED_HOSTS"):
        Settings(outbound_allowed_hosts="10.0.0.0/33")


def test_the_refusal_never_repeats_the_url() -> None:
    refused = OutboundRefused("a loopback address", "127.0.0.1")
    assert str(refused) == "127.0.0.1: a loopback address is not allowed"
    assert isinstance(refused, httpx.TransportError)
