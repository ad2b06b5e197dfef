"""The account's escalation policy: engineers read it, admins and owners set it."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.escalation_policy.schemas import EscalationPolicyIn, EscalationPolicyOut
from handoffs.domain.escalation_policy.service import EscalationPolicyService
from handoffs.enums import Role
from handoffs.security.auth import requires_role


def provide_policies(db_session: DbSession) -> EscalationPolicyService:
    return EscalationPolicyService(db_session)


class EscalationPolicyController(Controller):
    path = "/api/v1/escalation-policy"
    tags = ["escalation"]
    dependencies = {"policies": Provide(provide_policies, sync_to_thread=False)}

    @get("/", guards=[requires_role(Role.engineer, "see the escalation policy")])
    async def get_policy(
        self, user: CurrentUser, policies: NamedDependency[EscalationPolicyService]
    ) -> EscalationPolicyOut:
        """When an unclaimed escalation steps up, and to whom (the default until an admin sets one)."""
        return await policies.get(user)

    @put("/", guards=[requires_role(Role.admin, "change the escalation policy")])
    async def put_policy(
        self,
        data: JSONBody[EscalationPolicyIn],
        user: CurrentUser,
        policies: NamedDependency[EscalationPolicyService],
    ) -> EscalationPolicyOut:
        """Set the ladder: 1 to 5 levels, each later than the one before; waiting escalations follow it."""
        return await policies.put(user, data)
