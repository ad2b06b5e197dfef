from tests.test_bad_input import CASES, send
from tests.conftest import Api

async def test_probe(api: Api) -> None:
    session = await api.new_session("jane", psa_ticket_id="12345")
    for p in CASES:
        who, method, template, body, field, statuses = p.values
        r = await send(api, who, method, template.format(session=session["id"]), body)
        print(p.id, r.status_code, r.json()["detail"][:150])
