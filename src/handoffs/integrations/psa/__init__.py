"""PSA write-back adapters: ConnectWise Manage, Autotask, HaloPSA (and none)."""

from __future__ import annotations

import httpx

from handoffs.db.models import PsaConnection
from handoffs.enums import PsaVendor
from handoffs.integrations.psa.autotask import AutotaskAdapter
from handoffs.integrations.psa.base import PsaAdapter, PsaError
from handoffs.integrations.psa.connectwise import ConnectWiseAdapter
from handoffs.integrations.psa.halo import HaloAdapter

__all__ = ["PsaAdapter", "PsaError", "adapter_for"]


def adapter_for(connection: PsaConnection | None, http: httpx.AsyncClient) -> PsaAdapter | None:
    """The adapter for an account's PSA; None when it has none (or it is switched off)."""
    if connection is None or not connection.enabled or connection.vendor == PsaVendor.none:
        return None
    adapters: dict[PsaVendor, type[PsaAdapter]] = {
        PsaVendor.connectwise: ConnectWiseAdapter,
        PsaVendor.autotask: AutotaskAdapter,
        PsaVendor.halo: HaloAdapter,
    }
    return adapters[connection.vendor](connection, http)
