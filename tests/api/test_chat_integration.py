"""GET/PUT /api/v1/integrations/chat and its test message: admins and owners, one row per account,
the webhook URL write-only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_roles import assert_readable_403
from tests.conftest import Api
from tests.support.fake_chat import SECRET_TOKEN, Answer, FakeChat

pytestmark = pytest.mark.usefixtures("no_chat_integrations")

PATH = "/api/v1/integrations/chat"
SLACK_URL = f"https://hooks.slack.com/services/T0000/B0000/{SECRET_TOKEN}"
TEAMS_URL = f"https://acme.webhook.office.com/webhookb2/1234@5678/IncomingWebhook/{SECRET_TOKEN}/abcd"
WORKFLOW_URL = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SECRET_TOKEN}"
)
NOTHING = {"kind": "none", "min_priority": "normal", "webhook_url_set": False, "webhook_host": None}


async def _put(api: Api, who: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await api.call(who, "PUT", PATH, json=body)
    assert response.status_code == status, response.text
    assert SECRET_TOKEN not in response.text
    return dict(response.json())


async def test_an_account_without_chat_shows_none(api: Api) -> None:
    response = await api.call("ada", "GET", PATH)
    assert response.status_code == 200, response.text
    assert response.json() == NOTHING


@pytest.mark.parametrize(
    ("kind", "url", "host"),
    [("slack", SLACK_URL, "hooks.slack.com"), ("teams", TEAMS_URL, "acme.webhook.office.com"),
     ("teams", WORKFLOW_URL, "prod-12.westeurope.logic.azure.com")],
)  # fmt: skip
async def test_the_webhook_url_is_write_only_and_answers_show_its_host(
    api: Api, kind: str, url: str, host: str
) -> None:
    shown = await _put(api, "ada", {"kind": kind, "webhook_url": url, "min_priority": "high"})
    expected = {"kind": kind, "min_priority": "high", "webhook_url_set": True, "webhook_host": host}
    assert shown == expected
    again = await api.call("olivia", "GET", PATH)
    assert again.json() == expected
    assert SECRET_TOKEN not in again.text


async def test_a_put_without_the_url_keeps_the_stored_one(api: Api) -> None:
    await _put(api, "ada", {"kind": "slack", "webhook_url": SLACK_URL, "min_priority": "urgent"})
    kept = await _put(api, "olivia", {"kind": "slack", "min_priority": "low"})
    assert kept == {
        "kind": "slack",
        "min_priority": "low",
        "webhook_url_set": True,
        "webhook_host": "hooks.slack.com",
    }
    # min_priority left out is kept too; "none" turns posting off and keeps the URL for later.
    off = await _put(api, "ada", {"kind": "none"})
    assert off == {
        "kind": "none",
        "min_priority": "low",
        "webhook_url_set": True,
        "webhook_host": "hooks.slack.com",
    }
    cleared = await _put(api, "ada", {"kind": "none", "webhook_url": ""})
    assert cleared["webhook_url_set"] is False


async def test_slack_or_teams_need_a_url(api: Api) -> None:
    response = await api.call("ada", "PUT", PATH, json={"kind": "teams"})
    assert response.status_code == 400
    assert response.json()["detail"] == "webhook_url is required to post to Teams"


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("not a url", "webhook_url must not contain spaces or control characters"),
        ("hooks.slack.com/services/T/B/x", "webhook_url must be a web address such as"),
        ("ftp://hooks.slack.com/services/T/B/x", "webhook_url must be a web address such as"),
        (
            "https://user:pw@hooks.slack.com/services/T/B/x",
            "webhook_url must not contain a user name or password",
        ),
        (
            "https://token@hooks.slack.com/services/T/B/x",
            "webhook_url must not contain a user name or password",
        ),
        (
            "http://hooks.slack.com/services/T/B/x",
            "webhook_url must use https (plain http only for 127.0.0.1",
        ),
        ("https://169.254.169.254/latest/meta-data", "webhook_url must name a public host"),
        ("https://hooks.slack.com:99999/services", "webhook_url is not a valid URL"),
        (
            "https://hooks.slack.com/services/\u0000",
            "webhook_url: control characters are not allowed (U+0000)",  # handoffs.domain.text
        ),
        ("https://hooks.slack.com/" + "a" * 2000, "webhook_url: Expected `str` of length <= 2000"),
    ],
)
async def test_a_bad_webhook_url_is_a_clear_400_that_does_not_repeat_it(
    api: Api, url: str, detail: str
) -> None:
    response = await api.call("ada", "PUT", PATH, json={"kind": "slack", "webhook_url": url})
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(detail), response.json()
    assert url not in response.text
    assert "aaaaaaaa" not in response.text
    assert (await api.call("ada", "GET", PATH)).json() == NOTHING  # nothing written


@pytest.mark.parametrize("who", ["jane", "sam", "victor", "gus"])
async def test_engineers_and_viewers_may_not_see_or_change_chat(api: Api, who: str) -> None:
    for method, path, body in [
        ("GET", PATH, None),
        ("PUT", PATH, {"kind": "slack", "webhook_url": SLACK_URL}),
        ("POST", f"{PATH}/test", None),
    ]:
        response = await api.call(who, method, path, **({"json": body} if body else {}))
        assert_readable_403(response)
        assert response.json()["detail"] == "Your role may not configure chat notifications."
    assert (await api.call("ada", "GET", PATH)).json() == NOTHING


@pytest.mark.parametrize("who", ["ada", "olivia"])
async def test_admins_and_owners_configure_chat(api: Api, who: str) -> None:
    shown = await _put(api, who, {"kind": "slack", "webhook_url": SLACK_URL})
    assert shown["kind"] == "slack"
    assert (await api.call(who, "GET", PATH)).status_code == 200


async def test_each_account_has_its_own_chat_integration(api: Api) -> None:
    await _put(api, "ada", {"kind": "slack", "webhook_url": SLACK_URL, "min_priority": "high"})
    globex = await api.call("gina", "GET", PATH)
    assert globex.json() == NOTHING  # Globex does not see Acme's
    await _put(api, "gina", {"kind": "teams", "webhook_url": TEAMS_URL, "min_priority": "urgent"})
    acme = await api.call("ada", "GET", PATH)
    assert acme.json() == {
        "kind": "slack", "min_priority": "high", "webhook_url_set": True, "webhook_host": "hooks.slack.com",
    }  # fmt: skip
    assert (await api.call("gina", "GET", PATH)).json()["webhook_host"] == "acme.webhook.office.com"


# -- the test message ----------------------------------------------------------------------------


async def test_the_test_message_reaches_the_fake_slack_webhook(api: Api, chat: FakeChat) -> None:
    await _put(api, "ada", {"kind": "slack", "webhook_url": chat.url})
    response = await api.call("ada", "POST", f"{PATH}/test")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "status_code": 200}
    (post,) = chat.posts
    assert post.body["blocks"][0]["text"]["text"] == "Test message from handoffs"
    assert "Ada Admin" in post.body["blocks"][1]["fields"][1]["text"]


async def test_the_test_message_goes_to_teams_as_an_adaptive_card(api: Api, chat: FakeChat) -> None:
    await _put(api, "olivia", {"kind": "teams", "webhook_url": chat.url})
    response = await api.call("olivia", "POST", f"{PATH}/test")
    assert response.json() == {"ok": True, "status_code": 200}
    (post,) = chat.posts
    assert post.body["attachments"][0]["content"]["body"][1]["text"] == "Test message from handoffs"


async def test_a_refused_test_message_says_why_in_words(api: Api, chat: FakeChat) -> None:
    await _put(api, "ada", {"kind": "slack", "webhook_url": chat.url})
    chat.script = [Answer(410, body="channel_is_archived")]
    response = await api.call("ada", "POST", f"{PATH}/test")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "status_code": 410,
        "error": "127.0.0.1 says the webhook or its channel is gone (410): channel_is_archived",
    }


async def test_a_test_message_to_a_dead_port_says_it_could_not_connect(api: Api, dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}/services/T/B/{SECRET_TOKEN}"
    await _put(api, "ada", {"kind": "slack", "webhook_url": url})
    response = await api.call("ada", "POST", f"{PATH}/test")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False, "error": "could not connect to 127.0.0.1 (connection refused or no route)",
    }  # fmt: skip
    assert SECRET_TOKEN not in response.text
    assert str(dead_port) not in response.text


async def test_a_test_message_without_an_integration_is_a_409(api: Api) -> None:
    response = await api.call("ada", "POST", f"{PATH}/test")
    assert response.status_code == 409
    assert "No chat integration is set up" in response.json()["detail"]
