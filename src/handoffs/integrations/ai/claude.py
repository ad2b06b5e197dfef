"""The assessment by Claude, through the official anthropic SDK."""

from __future__ import annotations

import msgspec
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, TextBlockParam, ToolChoiceToolParam

from handoffs.integrations.ai.prompt import SYSTEM_PROMPT, TOOL, render_prompt
from handoffs.integrations.ai.schemas import (
    TOOL_NAME,
    AssessmentInput,
    AssessmentResult,
    InvalidModelOutput,
    ModelOutput,
)


class AnthropicAssessor:
    """The official SDK; transport and retries are the caller's (tests inject a fake transport)."""

    def __init__(self, client: AsyncAnthropic, model: str, max_tokens: int = 4096) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    async def assess(self, data: AssessmentInput) -> AssessmentResult:
        system: list[TextBlockParam] = [
            # The fixed instructions are identical for every escalation: cache them.
            {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
        ]
        tool_choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
        messages: list[MessageParam] = [{"role": "user", "content": render_prompt(data)}]
        message = await self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=system,
            tools=[TOOL],
            tool_choice=tool_choice,
            messages=messages,
        )
        usage = message.usage
        tool_inputs = [
            block.input for block in message.content if block.type == "tool_use" and block.name == TOOL_NAME
        ]
        if not tool_inputs:
            raise InvalidModelOutput(
                f"the model did not call {TOOL_NAME} (stop reason: {message.stop_reason})"
            )
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
        )
