"""The AI assessment and escalation package: Claude through the anthropic SDK, or an offline stand-in.

``AnthropicAssessor`` (``claude``) asks the model to call one tool whose input
schema is the msgspec Struct we store (``schemas``), then decodes that input
strictly; anything else is ``InvalidModelOutput``. The fixed instructions and
the tool (``prompt``) are the cached prefix. ``OfflineAssessor`` (``offline``)
fills the same fields from the transcript when no model is available, and says
plainly that it is not an AI assessment.
"""

from handoffs.integrations.ai.claude import AnthropicAssessor
from handoffs.integrations.ai.offline import OfflineAssessor, documentation_markdown
from handoffs.integrations.ai.prompt import SYSTEM_PROMPT, TOOL, render_prompt
from handoffs.integrations.ai.schemas import (
    OFFLINE_DISCLAIMER,
    TOOL_NAME,
    AnswerCutOff,
    Assessment,
    AssessmentInput,
    AssessmentResult,
    Assessor,
    EscalationPackage,
    InvalidModelOutput,
    ModelOutput,
    PastFix,
    Progress,
)

__all__ = [
    "OFFLINE_DISCLAIMER",
    "SYSTEM_PROMPT",
    "TOOL",
    "TOOL_NAME",
    "AnswerCutOff",
    "AnthropicAssessor",
    "Assessment",
    "AssessmentInput",
    "AssessmentResult",
    "Assessor",
    "EscalationPackage",
    "InvalidModelOutput",
    "ModelOutput",
    "OfflineAssessor",
    "PastFix",
    "Progress",
    "documentation_markdown",
    "render_prompt",
]
