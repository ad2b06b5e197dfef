"""The assessment by Claude, through the official anthropic SDK, streamed.

The forced tool's input arrives as ``input_json_delta`` chunks; the SDK's
``MessageStream`` parses what has arrived so far (jiter, partial mode) and we
hand that snapshot to ``progress`` as it grows. Only the finished message is
decoded strictly into ``ModelOutput``: a partial is shown, never stored as the
assessment.
"""

from __future__ import annotations

from typing import Any

import msgspec
from anthropic import AsyncAnthropic
from anthropic.types import Message, MessageParam, TextBlockParam, ToolChoiceToolParam

from handoffs.integrations.ai.prompt import SYSTEM_PROMPT, TOOL, prefix_is_cacheable, render_prompt
from handoffs.integrations.ai.schemas import (
    TOOL_NAME,
    AnswerCutOff,
    AssessmentInput,
    AssessmentResult,
    InvalidModelOutput,
    ModelOutput,
    Progress,
)


class AnthropicAssessor:
    """The official SDK; transport and retries are the caller's (tests inject a fake transport)."""

    def __init__(
        self, client: AsyncAnthropic, model: str, max_tokens: int = 4096, *, streaming: bool = True
    ) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.streaming = streaming
        system: TextBlockParam = {"type": "text", "text": SYSTEM_PROMPT}
        if prefix_is_cacheable(model):
            # The tool and the instructions are the same for every escalation: cache them.
            system["cache_control"] = {"type": "ephemeral"}
        self.system = [system]

    async def assess(self, data: AssessmentInput, progress: Progress | None = None) -> AssessmentResult:
        tool_choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
        messages: list[MessageParam] = [{"role": "user", "content": render_prompt(data)}]
        if not self.streaming:
            message = await self.client.messages.create(
                model=self.model, max_tokens=self.max_tokens, system=self.system, tools=[TOOL],
                tool_choice=tool_choice, messages=messages,
            )  # fmt: skip
            return self._result(message)
        async with self.client.messages.stream(
            model=self.model, max_tokens=self.max_tokens, system=self.system, tools=[TOOL],
            tool_choice=tool_choice, messages=messages,
        ) as stream:  # fmt: skip
            finished = False
            try:
                async for event in stream:
                    if (
                        event.type == "input_json"
                        and progress is not None
                        and isinstance(event.snapshot, dict)
                    ):
                        progress(event.snapshot)
                    finished = event.type == "message_stop"
            except ValueError as exc:  # the SDK's partial-JSON parse of the tool input gave up
                raise InvalidModelOutput(f"the model's {TOOL_NAME} input was not JSON") from exc
            if not finished:
                # The connection ended cleanly but the answer did not (no message_stop).
                raise AnswerCutOff("the AI service's answer was cut off")
            message = await stream.get_final_message()
        return self._result(message)

    def _result(self, message: Message) -> AssessmentResult:
        usage = message.usage
        tool_inputs: list[Any] = [
            block.input for block in message.content if block.type == "tool_use" and block.name == TOOL_NAME
        ]
        if not tool_inputs:
            raise InvalidModelOutput(
                f"the model did not call {TOOL_NAME} (stop reason: {message.stop_reason})"
            )
        if message.stop_reason == "max_tokens":
            raise InvalidModelOutput(f"the model ran out of tokens ({self.max_tokens}) while writing")
        try:
            output = msgspec.convert(tool_inputs[0], ModelOutput)
        except msgspec.ValidationError as exc:
            raise InvalidModelOutput(f"the model's {TOOL_NAME} input was invalid: {exc}") from exc
        return AssessmentResult(
            output=output,
            source="anthropic",
            model=message.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
        )
