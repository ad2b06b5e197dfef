"""The offline assessor on its own: what it reads as tried, symptoms and environment, and that its
output always fits ``ModelOutput``. Pure: no database, no worker."""

from __future__ import annotations

import msgspec
import pytest
from markdown_it import MarkdownIt

from handoffs.integrations.ai import AssessmentInput, ModelOutput, OfflineAssessor, documentation_markdown
from handoffs.integrations.ai.markdown_text import markdown_line, plain_text


def _input(
    *messages: tuple[str, str],
    notes: str = "",
    summary: str = "Printer on floor 2 is offline",
    ticket: str | None = "12345",
) -> AssessmentInput:
    return AssessmentInput(
        problem_summary=summary,
        engineer_notes=notes,
        psa_ticket_id=ticket,
        session_title="Printer",
        transcript=[{"role": role, "content": content} for role, content in messages],
        creator_name="Jane Junior",
    )


async def _assess(data: AssessmentInput) -> ModelOutput:
    return (await OfflineAssessor().assess(data)).output


def _rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


async def test_assistant_suggestions_and_tool_output_are_never_already_tried() -> None:
    output = await _assess(
        _input(
            ("user", "Outlook says Disconnected"),
            ("assistant", "Try restarting Outlook. I restarted the service for you. Reinstalled the add-in."),
            ("tool", "Restarted spooler service: OK\nCleared 3 jobs"),
        )
    )
    assert output.assessment.what_was_tried == []
    assert "What has already been tried, and what happened?" in output.escalation_package.open_questions


async def test_a_user_saying_they_already_restarted_the_print_spooler_has_tried_it() -> None:
    output = await _assess(
        _input(
            ("user", "The queue is stuck. I already restarted the print spooler."),
            ("assistant", "Have you tried reinstalling the driver?"),
        )
    )
    assert output.assessment.what_was_tried == ["I already restarted the print spooler."]


@pytest.mark.parametrize(
    "said",
    [
        "I restarted the spooler",
        "tried clearing the cache",
        "already rebooted",
        "ran sfc /scannow",
        "reinstalled the driver",
        "we reset the password",
        "We've also flushed DNS",
        "I did a gpupdate /force",
        "Rebooted twice, no change",
        "User can't print, cleared the queue",
    ],
)
async def test_what_the_engineer_says_they_did_is_already_tried(said: str) -> None:
    output = await _assess(_input(("user", said)))
    assert output.assessment.what_was_tried == [said]


@pytest.mark.parametrize(
    "said",
    [
        "Did you restart the spooler?",
        "Should I reboot it?",
        "I haven't rebooted yet",
        "I didn't reset the password",
        "Not tried anything yet",
        "The PC restarted by itself overnight",
        "It stopped working after the update",
        "I tried to print and it fails",
        "Printer on floor 2 is offline",
    ],
)
async def test_questions_negations_and_what_the_machine_did_are_not_tried(said: str) -> None:
    output = await _assess(_input(("user", said)))
    assert output.assessment.what_was_tried == []


async def test_each_item_of_a_tried_list_is_already_tried() -> None:
    output = await _assess(
        _input(
            (
                "user",
                "Outlook says **Disconnected** in the status bar.\nTried:\n- safe mode\n- a *new* profile",
            ),
            notes="What I've done so far:\n- safe mode\n- the OST file\nUser says it is slow",
        )
    )
    assert output.assessment.what_was_tried == ["safe mode", "the OST file", "a new profile"]
    assert output.escalation_package.symptoms[1:] == [
        "User says it is slow",
        "Outlook says Disconnected in the status bar.",
    ]


async def test_the_problem_summary_is_never_already_tried() -> None:
    output = await _assess(_input(summary="Restarted the spooler and it still fails"))
    assert output.assessment.what_was_tried == []


async def test_multi_line_notes_are_one_item_a_line() -> None:
    notes = (
        "- Restarted the print spooler, no change\n"
        "* Reinstalled the HP driver\n"
        "1. Cleared the queue\n"
        "\n"
        "User says it fails since Tuesday's update\n"
        "Spooler restarted again at 10:00\n"
    )
    output = await _assess(_input(notes=notes))
    assert output.assessment.what_was_tried == [
        "Restarted the print spooler, no change",
        "Reinstalled the HP driver",
        "Cleared the queue",
        "Spooler restarted again at 10:00",
    ]
    assert "User says it fails since Tuesday's update" in output.escalation_package.symptoms


async def test_markdown_is_plain_text_in_the_lists() -> None:
    output = await _assess(
        _input(
            (
                "user",
                'I **reinstalled** the [HP driver](https://support.hp.com/drivers) and it says "`0x0000011b`"',
            ),
            notes="## Done so far\n- Ran `sfc /scannow` as **admin**\n> Cleared *all* jobs in [the queue](https://x.test)",
            summary="Print fails with **error 0x0000011b**",
        )
    )
    tried = output.assessment.what_was_tried
    assert tried == [
        "Ran sfc /scannow as admin",
        "Cleared all jobs in the queue",
        'I reinstalled the HP driver and it says "0x0000011b"',
    ]
    assert output.escalation_package.symptoms[0] == "Print fails with error 0x0000011b"
    lists = [*tried, *output.escalation_package.symptoms, *output.assessment.next_steps]
    for marker in ("**", "`", "](", "## ", "- ", "> "):
        assert not any(marker in item for item in lists), marker


async def test_the_write_up_has_the_notes_line_by_line_in_valid_markdown() -> None:
    notes = "- Restarted the **print spooler**\n* Checked [the driver](https://hp.test/d)\n\n```\nsfc /scannow\n```"
    output = await _assess(_input(notes=notes))
    doc = output.escalation_package.documentation_markdown
    section = doc.split("### Engineer's notes\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [
        "- Restarted the **print spooler**",
        "- Checked [the driver](https://hp.test/d)",
        "- sfc /scannow",
    ]
    html = _rendered(doc)
    assert "<li>Restarted the <strong>print spooler</strong></li>" in html
    assert '<a href="https://hp.test/d">the driver</a>' in html


async def test_a_long_bold_message_is_cut_in_the_write_up_without_leaving_bold_open() -> None:
    message = "I restarted **" + ("the spooler again " * 60).strip() + "** and `code " + "x" * 600 + "`"
    output = await _assess(
        _input(("user", message), ("user", "- 1986\\. A *list* marker? [link](javascript:x)"))
    )
    doc = output.escalation_package.documentation_markdown
    html = _rendered(doc)
    assert "**" not in html
    assert "`" not in html
    assert "…</strong>" in html
    assert "<li><strong>user</strong>: 1986. A <em>list</em> marker? [link](javascript:x)</li>" in html


async def test_symptoms_come_from_the_summary_and_the_users_errors_not_the_assistant() -> None:
    output = await _assess(
        _input(
            (
                "user",
                'Outlook shows "Trying to connect". I restarted it.\n\n```\nError 0x8004010F: cannot open\nok\n```',
            ),
            ("assistant", "This error usually fails because of a corrupt profile."),
            ("tool", "Exception: mailbox unavailable"),
            ("user", "Thanks, what next?"),
            summary="Outlook won't sync",
        )
    )
    assert output.escalation_package.symptoms == [
        "Outlook won't sync",
        'Outlook shows "Trying to connect".',
        "Error 0x8004010F: cannot open",
    ]
    assert "What is the exact error message (its text, code or a screenshot)?" not in (
        output.escalation_package.open_questions
    )


async def test_next_steps_fit_the_cause_and_leave_out_what_was_done() -> None:
    fresh = await _assess(_input(("user", "The printer queue is stuck, the print spooler keeps stopping")))
    assert fresh.assessment.likely_cause.startswith("A printing problem")
    assert len(fresh.assessment.next_steps) == 3
    assert "Print Spooler" in fresh.assessment.next_steps[0]

    done = await _assess(
        _input(
            ("user", "The printer queue is stuck. I restarted the print spooler and reinstalled the driver.")
        )
    )
    steps = done.assessment.next_steps
    assert len(steps) == 3
    assert not any("Print Spooler" in s or "driver package" in s for s in steps)
    assert any("test page" in s for s in steps)


async def test_without_a_cause_the_steps_are_general() -> None:
    output = await _assess(_input(("user", "It is weird"), summary="Something odd"))
    assert output.assessment.likely_cause == "Not enough in the transcript to point at a cause."
    assert output.assessment.next_steps[0].startswith("Confirm the symptoms")
    assert output.assessment.risk == "low"


async def test_environment_keeps_the_ticket_and_names_the_os_and_apps() -> None:
    output = await _assess(
        _input(
            ("user", "On Windows 11 with Outlook 2016, over GlobalProtect"),
            ("assistant", "If you are on macOS 14, open Firefox"),
            ("tool", "OS Name: Microsoft Windows 10 Pro"),
        )
    )
    assert output.escalation_package.environment == [
        "PSA ticket #12345",
        "Windows 11",
        "Windows 10",
        "Outlook 2016",
        "GlobalProtect",
    ]


def _huge_inputs() -> list[AssessmentInput]:
    line = 'I restarted **the spooler** [x](https://a.test/y) and it says "error 0x80070005" on Windows 11. '
    return [
        _input(
            *[("user", f"{i}: " + line * 400) for i in range(60)],
            notes="\n".join(f"- Ran step {i}: `" + "y" * 3000 + "`" for i in range(120)),
            summary="s" * 10_000,
            ticket="A" * 64,
        ),
        _input(*[("user", "[" * 100_000)] * 2, notes="*" * 10_000, summary="`" * 10_000),
        _input(*[(role, "Rebooted. " * 5000) for role in ("user", "assistant", "tool") * 20]),
    ]


@pytest.mark.parametrize("data", _huge_inputs(), ids=["long-lines", "pathological-markdown", "many-messages"])
async def test_output_always_fits_the_model_output_limits(data: AssessmentInput) -> None:
    output = await _assess(data)
    assert msgspec.convert(msgspec.to_builtins(output), ModelOutput) == output
    assert len(output.escalation_package.documentation_markdown) <= 20_000


def test_the_write_up_fits_its_limit_with_the_models_longest_lists() -> None:
    data = _input(*[("user", "Rebooted " * 300)] * 200, notes="\n".join(["Checked " * 200] * 40))
    long_items = ["Restarted **the service** " * 80] * 50
    doc = documentation_markdown(data, "c" * 2000, long_items, long_items)
    assert len(doc) <= 20_000
    assert "more not shown._" in doc
    assert "**" not in _rendered(doc).replace("<strong>", "")


async def test_the_same_input_gives_the_same_output() -> None:
    data = _huge_inputs()[0]
    first, second = await _assess(data), await _assess(data)
    assert msgspec.json.encode(first) == msgspec.json.encode(second)


@pytest.mark.parametrize(
    "markdown",
    [
        "**Restarted** the `spooler` see [KB](https://x.test/a_(b)) &amp; <b>x</b>",
        "# Heading\n\n- item *one*\n- item ``with ` tick``\n\n```\ncode block\n```",
        "snake_case *.ost C:\\Users\\jane ~~gone~~ 3 < 4 | pipes #tag",
        "1986\\. was a year",
        "- + not a nested list",
    ],
)
def test_a_markdown_line_reads_as_the_original_text(markdown: str) -> None:
    line = markdown_line(markdown, 2000)
    assert "\n" not in line
    assert plain_text(line) == plain_text(markdown)


def test_plain_text_keeps_link_text_and_code() -> None:
    assert (
        plain_text("1. **Ran** `sfc /scannow`, see [the KB](https://kb.test)")
        == "Ran sfc /scannow, see the KB"
    )
    assert plain_text("![screenshot](https://i.test/a.png) of the error") == "screenshot of the error"


def test_a_markdown_line_never_starts_a_block() -> None:
    assert markdown_line("1986\\. was a year") == "1986\\. was a year"
    assert markdown_line("\\- not a list") == "\\- not a list"
    assert markdown_line("\\# not a heading") == "\\# not a heading"
