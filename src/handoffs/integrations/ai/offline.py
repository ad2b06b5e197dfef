"""The offline assessor: the same fields, put together mechanically when no model is available."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from handoffs.integrations.ai.markdown_text import blocks, clip, markdown_line, one_line, plain_text
from handoffs.integrations.ai.schemas import (
    Assessment,
    AssessmentInput,
    AssessmentResult,
    EscalationPackage,
    ModelOutput,
    Progress,
)

#: The Structs' limits (``schemas``): items per list, characters per item, the write-up.
MAX_ITEMS = 50
MAX_ITEM = 2000
MAX_SUMMARY = 4000
MAX_DOCUMENT = 20_000
#: Symptoms taken from one message at most: a pasted log must not push out everything else.
MAX_SYMPTOMS_PER_MESSAGE = 5
#: What is read of one message for what was tried, symptoms and environment (the likely cause
#: counts words in all of it). Longer is a paste, and a paste of brackets costs markdown-it 7 µs
#: a character: a bound per message keeps the worst case a few seconds, not minutes.
MAX_READ_PER_MESSAGE = 20_000


@dataclass(frozen=True)
class _Step:
    """A next step, left out when one thing already tried matches all of ``done_if``."""

    text: str
    done_if: tuple[re.Pattern[str], ...] = ()

    def done(self, tried: Iterable[str]) -> bool:
        return bool(self.done_if) and any(all(p.search(t) for p in self.done_if) for t in tried)


def _step(text: str, done_if: tuple[str, ...] = ()) -> _Step:
    return _Step(text, tuple(re.compile(p, re.IGNORECASE) for p in done_if))


@dataclass(frozen=True)
class _Cause:
    name: str
    keywords: tuple[str, ...]
    likely_cause: str
    next_steps: tuple[_Step, ...]


#: Keyword → likely cause and what a senior would do next. First match by count wins.
_CAUSES: tuple[_Cause, ...] = (
    _Cause(
        "email",
        ("outlook", "exchange", "mailbox", "ost", "smtp", "imap", "email"),
        "A mail client or mailbox problem (profile, cached data or server connectivity).",
        (
            _step(
                "Check the mailbox outside the client: does Outlook on the web work, and what do the "
                "Microsoft 365 service health page and a message trace say?",
                (r"\bowa\b|on the web|web ?mail|outlook\.office|message trace",),
            ),
            _step(
                "Start Outlook in safe mode (outlook.exe /safe) to rule out add-ins, then create a new "
                "Outlook profile (Control Panel → Mail → Show Profiles).",
                (r"profile", r"new|re-?creat|creat|rebuil|remov|delet|reset"),
            ),
            _step(
                "Rebuild the cached mailbox: close Outlook, rename the .ost file so it downloads again, "
                "and check the mailbox is not at its quota.",
                (r"\.?\bost\b", r"renam|delet|rebuil|re-?creat|remov"),
            ),
        ),
    ),
    _Cause(
        "network",
        ("vpn", "dns", "dhcp", "wifi", "wi-fi", "network", "firewall", "latency"),
        "A network path problem (VPN, DNS or firewall) between the user and the service.",
        (
            _step(
                "Test the path from the affected device step by step: ipconfig /all, ping the gateway, "
                "nslookup the service's name, Test-NetConnection <host> -Port 443.",
                (r"ping|nslookup|tracert|traceroute|test-netconnection",),
            ),
            _step(
                "Flush DNS and renew the lease (ipconfig /flushdns, /release, /renew), then compare with "
                "another device on the same network and the same device on another network (a hotspot).",
                (r"flush|renew|release",),
            ),
            _step(
                "Read the VPN client's and the firewall's logs for the user's connection at the time of "
                "the drop, and compare the client's version with a working user's.",
                (r"\blogs?\b", r"vpn|firewall"),
            ),
        ),
    ),
    _Cause(
        "identity",
        ("password", "mfa", "login", "sign in", "locked", "account", "sso", "azure ad", "entra"),
        "An identity or authentication problem (credentials, MFA or account state).",
        (
            _step(
                "Check the account in Entra ID / Active Directory (locked out, disabled, password expired) "
                "and its sign-in logs for the failure reason (an AADSTS code).",
                (r"sign-?in logs?|audit logs?",),
            ),
            _step(
                "Check the user's MFA methods and the Conditional Access result of the failed sign-ins; "
                "have MFA registered again if the method was lost or changed (a new phone).",
                (r"mfa|authenticator", r"re-?regist|reset|re-?enrol|remov|re-?add"),
            ),
            _step(
                "Reset the password or unlock the account, and have the user sign in fresh after removing "
                "cached credentials on the device (Credential Manager, Keychain).",
                (r"password|unlock", r"reset|chang|unlock"),
            ),
        ),
    ),
    _Cause(
        "printing",
        ("printer", "print", "spooler", "driver"),
        "A printing problem (spooler, driver or queue).",
        (
            _step(
                "Stop the Print Spooler, clear the stuck jobs from C:\\Windows\\System32\\spool\\PRINTERS "
                "and start it again; check the PrintService event log for the error.",
                (r"spool", r"restart|clear|purg|stop"),
            ),
            _step(
                "Remove the printer and its driver package (Print Management → Drivers) and install the "
                "vendor's current driver, a universal or type 4 driver if the model has one.",
                (r"driver", r"re-?install|remov|updat|install|replac"),
            ),
            _step(
                "Print a test page from the print server or the printer's own web page, to tell a fault "
                "of this client from one of the queue or the device.",
                (r"test page",),
            ),
        ),
    ),
    _Cause(
        "storage",
        ("disk", "storage", "onedrive", "sharepoint", "sync", "quota"),
        "A storage or file-sync problem (quota, sync client or permissions).",
        (
            _step(
                "Check the quota and the usage (OneDrive or SharePoint admin centre, or the device's disk) "
                "and free space or raise the quota.",
                (r"quota|free(?:d)? (?:up )?space|disk clean|clean(?:ed)? up",),
            ),
            _step(
                "Look at the OneDrive client's sync problems (cloud icon → View sync problems) and reset "
                "it with onedrive.exe /reset if it is stuck.",
                (r"onedrive|sync", r"reset|re-?link|unlink|re-?install|restart"),
            ),
            _step(
                "Check the user's permissions on the library or share, and whether paths are too long or "
                "file names hold characters the service blocks.",
                (r"permission",),
            ),
        ),
    ),
)

#: Without a cause, or to fill in for steps already done.
_GENERAL_STEPS: tuple[_Step, ...] = (
    _step(
        "Confirm the symptoms with the user and get the exact error text (or a screenshot) and when it happens."
    ),
    _step(
        "Reproduce the problem and read the logs around that time (Event Viewer on the device, the service's "
        "admin logs).",
        (r"event ?viewer|event logs?|\blogs\b",),
    ),
    _step(
        "Check what changed recently for the affected user or device (updates, policies, credentials, hardware)."
    ),
)

# -- What the engineer says they did -----------------------------------------
#
# "Already tried" is what the engineer wrote they did, never what the assistant or a tool
# suggested or printed, nor the problem summary. A line of the junior's notes, or a sentence of a
# user message, counts when it reports an action in the past tense:
#
# 1. "I" or "we", at most three filler words ("have", "already", "also", "then", "-ly" words),
#    then an action verb in the past tense: "I restarted the spooler", "we've already reset the
#    password", "I manually cleared the cache", "I did a gpupdate";
# 2. a clause (split at , ; : brackets dashes and "and/but/then/so") that starts with such a
#    verb, as people write telegraphically: "Rebooted twice, no change", "already tried clearing
#    the cache", "ran sfc /scannow";
# 3. in the notes only, the junior's own log of the work, a short subject then the verb:
#    "Spooler restarted", "Cache on the laptop cleared twice" (not after "says"/"shows": that is
#    reported; not "by itself").
#
# A line that only introduces a list ("Tried:", "What I've done so far:") makes the list under it
# (in the same message, or the notes lines after it) things tried: "- safe mode", "- a new profile".
#
# Questions ("Did you restart it?", "Should I reboot?") never count. Negations do not match,
# because only the fillers may stand between the subject and the verb ("I haven't rebooted",
# "didn't reset", "not tried yet"). Verbs that also say what a machine did by itself
# ("started", "stopped", "changed") count only after "I" or "we".

_ACTIONS = (
    "restarted", "rebooted", "reinstalled", "re-installed", "installed", "uninstalled", "ran", "re-ran",
    "reran", "cleared", "reset", "rolled back", "removed", "deleted", "recreated", "re-created", "rebuilt",
    "repaired", "disabled", "enabled", "re-enabled", "replaced", "reconnected", "re-added", "readded",
    "added", "flushed", "renewed", "released", "re-registered", "reregistered", "re-enrolled",
    "signed out", "logged out", "logged off", "power-cycled", "power cycled", "unplugged", "reseated",
    "re-seated", "updated", "upgraded", "downgraded", "patched", "reimaged", "re-imaged", "wiped",
    "purged", "rejoined", "restored", "remapped", "re-mapped", "reconfigured", "tried", "attempted",
    "did", "executed", "applied", "tested", "checked", "verified", "scanned", "pinged", "unlocked",
    "unblocked", "whitelisted", "allowlisted", "granted", "assigned", "resynced", "re-synced",
    "refreshed", "relinked", "re-linked", "killed", "ended", "renamed", "forced", "cleaned", "swapped",
)  # fmt: skip
#: Also what a machine or a person other than the engineer does: only after "I"/"we".
_FIRST_PERSON_ONLY = (
    "started", "stopped", "changed", "set", "created", "edited", "modified", "turned", "switched",
    "toggled", "followed", "disconnected", "connected", "mapped", "moved", "gave", "made", "done",
    "deployed", "pushed", "sent", "called", "contacted", "looked", "went", "walked", "confirmed", "asked",
)  # fmt: skip
#: After a subject in a note, these are as often a state as an action ("account disabled").
_NOT_AFTER_SUBJECT = {"did", "tried", "attempted", "disabled", "enabled", "deleted", "removed", "ended"}

_FILLER = r"(?:have|'ve|ve|had|'d|already|also|just|then|even|again|both|all|first|since|now|and|so|ok|okay|too|\w+ly)"
_AFTER_VERB = r"(?!\s+(?:not|you|u|i|we)\b)"


def _verbs(words: Iterable[str]) -> str:
    ordered = sorted(set(words), key=lambda w: (-len(w), w))  # longest first: "re-ran" before "ran"
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered) + r")\b"


_FIRST_PERSON = re.compile(
    rf"\b(?:i|we|ive)(?:'ve|'d)?(?:\s+{_FILLER}){{0,3}}\s+{_verbs(_ACTIONS + _FIRST_PERSON_ONLY)}{_AFTER_VERB}"
)
_CLAUSE_START = re.compile(rf"^(?:{_FILLER}\s+){{0,3}}{_verbs(_ACTIONS)}{_AFTER_VERB}")
_SUBJECT_THEN_VERB = re.compile(
    rf"^(?:[\w.'/\\-]+\s+){{1,4}}{_verbs(a for a in _ACTIONS if a not in _NOT_AFTER_SUBJECT)}"
    r"(?!\s+(?:by\s+itself|on\s+its\s+own|itself)\b)"
)
#: "I tried to log in and it fails" describes the problem; it is not an action taken on it.
_TRIED_TO_USE = re.compile(
    r"\b(?:tried|attempted|trying)\s+to\s+(?:log|sign|print|open|connect|access|send|use|launch|join|save"
    r"|load|view|reach|browse|download|upload|share|type|click|go|get|run|call)\b"
)
_TRIED_INTRO = re.compile(
    r"^(?:(?:what\s+)?(?:i|we)(?:'ve|\s+have)?\s+)?(?:already\s+)?(?:tried|done|attempted|did|checked)"
    r"(?:\s+so\s+far)?(?:\s+already)?\s*:?$"
)
_LIST_LINE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s")
_REPORTED = re.compile(r"\b(?:says?|said|shows?|showed|showing|reports?|reported|claims?|mentions?)\b")
_CLAUSE_BREAK = re.compile(r"[,;:()\[\]\u2013\u2014]|\s-\s|\b(?:and|but|then|so|because)\b")
_QUESTION = re.compile(
    r"^(?:(?:did|do|does|have|has|had|should|shall|can|could|would|will|is|are|was|were)\s+"
    r"(?:you|u|i|we|they|it|he|she|the\s+user|that|this)\b"
    r"|(?:what|why|how|when|where|which|who|any)\b.*\?$)"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

# -- What the user says is wrong ---------------------------------------------

#: Error codes and quoted messages: as good a symptom in a question or a pasted log as in prose.
_ERROR_TEXT = re.compile(
    r"\b0x[0-9a-f]{4,}\b"  # 0x80070005
    r"|\b[a-z]{2,}\d{3,}\b"  # AADSTS50076
    r"|\b(?:error|event(?:\s+id)?|code|status)\s*[#:]?\s*-?\d{2,}\b"  # error 1603, event ID 7031
    r"|\"[^\"]{3,}\"|“[^”]{3,}”",  # "The RPC server is unavailable"
    re.IGNORECASE,
)
_SYMPTOM_WORDS = re.compile(
    r"\b(?:errors?|fail(?:s|ed|ing|ure)?|cannot|can't|can\s?not|unable|won't|doesn't|does\s+not|isn't"
    r"|not\s+working|no\s+longer|stopped|crash(?:es|ed|ing)?|freez(?:es|ing)|froze|hangs?|hung|says|said"
    r"|shows?|showing|displays?|prompts?|pops?\s+up|keeps|stuck|offline|disconnect(?:s|ed)?|denied"
    r"|time[sd]?\s+out|timeout|slow|missing|blank|broken|bsod|blue\s+screen|warning|exception"
    r"|refuse[sd]?|rejects?|rejected|invalid|unavailable|not\s+responding)\b"
)
_LOG_ERROR = re.compile(r"\b(?:error|fail\w*|denied|exception|fatal|critical|timed?\s*out)\b")

# -- Where it happens ----------------------------------------------------------

#: Label and pattern; a pattern's ``(?P<v>...)`` group, when it matched, is the version.
_ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("Windows", r"\bwin(?:dows)?\s?(?P<v>1[01]|7|8\.1|xp|vista)\b"),
    ("Windows", r"\bwindows(?:\s+(?P<v>server\s+20\d\d(?:\s+r2)?))?\b"),
    ("macOS", r"\b(?:mac\s?os(?:\s?x)?|os\s?x)(?:\s+(?P<v>1\d(?:\.\d+){0,2}))?\b"),
    ("iOS", r"\b(?:ios|ipados)(?:\s+(?P<v>\d{1,2}(?:\.\d+){0,2}))?\b"),
    ("Android", r"\bandroid(?:\s+(?P<v>\d{1,2}))?\b"),
    ("Ubuntu", r"\bubuntu(?:\s+(?P<v>\d{2}\.\d{2}))?\b"),
    ("ChromeOS", r"\bchrome\s?os\b"),
    ("Microsoft 365", r"\b(?:microsoft|office|m|o)\s?365\b"),
    ("Office", r"\boffice\s+(?P<v>20\d\d)\b"),
    ("Outlook", r"\boutlook(?:\s+(?P<v>20\d\d))?\b"),
    ("Exchange", r"\bexchange(?:\s+(?P<v>online|server\s+20\d\d|20\d\d))?\b"),
    ("Teams", r"(?-i:\bTeams\b)|\bms\s+teams\b"),
    ("OneDrive", r"\bone\s?drive\b"),
    ("SharePoint", r"\bshare\s?point\b"),
    ("Entra ID (Azure AD)", r"\b(?:entra(?:\s+id)?|azure\s+ad|aad)\b"),
    ("Active Directory", r"\bactive\s+directory\b"),
    ("Intune", r"\bintune\b"),
    ("Chrome", r"\bchrome\b(?!\s?os)"),
    ("Edge", r"\bmicrosoft\s+edge\b|(?-i:\bEdge\b)(?!\s+cases?\b)"),
    ("Firefox", r"\bfirefox\b"),
    ("Citrix", r"\bcitrix\b"),
    ("Remote Desktop", r"\b(?:rdp|remote\s+desktop)\b"),
    ("GlobalProtect", r"\bglobal\s?protect\b"),
    ("AnyConnect", r"\banyconnect\b"),
    ("FortiClient", r"\bforti\s?client\b"),
)
# One pass over the text, not one per name: ``e3`` is the fourth entry, ``v3`` its version. Trying
# the names only where a word starts keeps a pasted log cheap.
_MENTION = re.compile(
    r"\b(?=[a-z])(?:"
    + "|".join(f"(?P<e{i}>{p.replace('(?P<v>', f'(?P<v{i}>')})" for i, (_, p) in enumerate(_ENVIRONMENT))
    + ")",
    re.IGNORECASE,
)


class OfflineAssessor:
    """Deterministic: the same transcript always gives the same assessment."""

    model = "offline"

    async def assess(self, data: AssessmentInput, progress: Progress | None = None) -> AssessmentResult:
        return AssessmentResult(output=offline_output(data), source="offline", model=self.model)


def offline_output(data: AssessmentInput) -> ModelOutput:
    """The assessment from the notes and the transcript, within the Structs' limits whatever their size."""
    cause, score = _likely_cause(data)
    said = _Said.read(data)
    tried = said.tried.items
    next_steps = [
        s.text for s in (*(cause.next_steps if cause else ()), *_GENERAL_STEPS) if not s.done(tried)
    ][:3]
    likely_cause = cause.likely_cause if cause else "Not enough in the transcript to point at a cause."
    environment = _Items()
    if data.psa_ticket_id:
        environment.add(f"PSA ticket #{data.psa_ticket_id}")
    for mention in _environment(data):
        environment.add(mention)
    risk: Literal["low", "medium", "high"] = "medium" if cause else "low"
    summary = data.problem_summary.strip() or data.session_title.strip() or "No problem summary was given."
    return ModelOutput(
        assessment=Assessment(
            likely_cause=likely_cause,
            what_was_tried=tried,
            next_steps=next_steps,
            risk=risk,
            confidence=(0.3 if score >= 3 else 0.2) if cause else 0.05,
        ),
        escalation_package=EscalationPackage(
            summary=clip(summary, MAX_SUMMARY),
            symptoms=said.symptoms.items,
            environment=environment.items,
            open_questions=_open_questions(said, environment),
            documentation_markdown=documentation_markdown(data, likely_cause, tried, next_steps),
        ),
    )


class _Items:
    """A list field: plain one-line items, each once (case aside), clipped, at most ``MAX_ITEMS``."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_ITEMS

    def add(self, text: str) -> bool:
        item = clip(one_line(text), MAX_ITEM)
        key = item.casefold()
        if not item or self.full or key in self._seen:
            return False
        self._seen.add(key)
        self.items.append(item)
        return True


@dataclass
class _Said:
    """What the engineer wrote: the notes line by line, and the user's messages sentence by sentence."""

    tried: _Items = field(default_factory=_Items)
    symptoms: _Items = field(default_factory=_Items)
    error_text: bool = False  # an error code or a quoted message among the symptoms

    @classmethod
    def read(cls, data: AssessmentInput) -> _Said:
        said = cls()
        if data.problem_summary.strip():
            said.add_symptom(plain_text(data.problem_summary))
        listing = False  # under a "Tried:" line
        for raw in data.engineer_notes.splitlines():
            line = plain_text(raw)
            if not line:
                continue
            listing = listing and bool(_LIST_LINE.match(raw))
            if _is_intro(line):
                listing = True
            elif listing or any(is_tried(s, notes=True) for s in _sentences(line)):
                said.tried.add(line)
            elif _ERROR_TEXT.search(line) or _SYMPTOM_WORDS.search(line.lower()):
                said.add_symptom(line)
        for content in _contents(data.transcript, {"user"}):
            if said.tried.full and said.symptoms.full:
                break
            said.read_message(content[:MAX_READ_PER_MESSAGE])
        return said

    def read_message(self, content: str) -> None:
        found: list[str] = []  # this message's symptoms
        listing = False  # under a "Tried:" line: the rest of its paragraph, and the list after it
        for block in blocks(content):
            listing = listing and block.item
            if block.code:  # pasted output: its error lines are symptoms, nothing in it was done
                found += [
                    line
                    for line in block.text.splitlines()
                    if _ERROR_TEXT.search(line) or _LOG_ERROR.search(line.lower())
                ]
                continue
            for sentence in _sentences(block.text):
                lower = sentence.lower()
                if _is_intro(sentence):
                    listing = True
                elif listing or is_tried(sentence):
                    self.tried.add(sentence)
                elif _ERROR_TEXT.search(sentence) or (
                    not _QUESTION.match(lower) and _SYMPTOM_WORDS.search(lower)
                ):
                    found.append(sentence)  # an error code in a question is still a symptom
        added = 0
        for symptom in found:
            if added == MAX_SYMPTOMS_PER_MESSAGE:
                break
            added += self.add_symptom(symptom)

    def add_symptom(self, text: str) -> bool:
        added = self.symptoms.add(text)
        self.error_text = self.error_text or (added and bool(_ERROR_TEXT.search(text)))
        return added


def is_tried(sentence: str, *, notes: bool = False) -> bool:
    """Does this sentence (plain text) say the engineer did something? See the rules above."""
    text = _TRIED_TO_USE.sub("used", sentence.lower().replace("\u2019", "'"))
    if _QUESTION.match(text.strip()):
        return False
    if _FIRST_PERSON.search(text):
        return True
    for clause in _CLAUSE_BREAK.split(text):
        clause = clause.strip(" \t.!?\"'*-_`")
        if not clause:
            continue
        if _CLAUSE_START.match(clause):
            return True
        if notes and _SUBJECT_THEN_VERB.match(clause) and not _REPORTED.search(clause):
            return True
    return False


def _is_intro(line: str) -> bool:
    return bool(_TRIED_INTRO.match(line.lower().replace("\u2019", "'").strip(" .")))


def _sentences(text: str) -> list[str]:
    return [s for s in (one_line(part) for part in _SENTENCE_END.split(text)) if s]


def _contents(transcript: list[dict[str, Any]], roles: set[str]) -> Iterator[str]:
    for message in transcript:
        if message.get("role") in roles:
            content = str(message.get("content", ""))
            if content.strip():
                yield content


def _likely_cause(data: AssessmentInput) -> tuple[_Cause | None, int]:
    text = " ".join(
        [data.problem_summary, data.engineer_notes, *(str(m.get("content", "")) for m in data.transcript)]
    ).lower()
    words = Counter(re.findall(r"[a-z][a-z-]+", text))
    scored = [
        (sum(words[k] if " " not in k else text.count(k) for k in cause.keywords), cause) for cause in _CAUSES
    ]
    score, best = max(scored, key=lambda s: s[0])  # the first of equals: the table's order
    return (best, score) if score else (None, 0)


def _environment(data: AssessmentInput) -> list[str]:
    """OS, apps and versions the engineer, the user or a tool's output mention, in order of mention.

    ``Windows 11`` and ``Windows 10`` are both kept; a bare ``Windows`` only when no version is.
    """
    versions: dict[str, list[str]] = {}
    sources = [data.session_title, data.problem_summary, data.engineer_notes]
    messages = (c[:MAX_READ_PER_MESSAGE] for c in _contents(data.transcript, {"user", "tool"}))
    for text in [*sources, *messages]:
        for match in _MENTION.finditer(text):
            index = int(str(match.lastgroup)[1:])
            seen = versions.setdefault(_ENVIRONMENT[index][0], [])
            version = _version(match.group(f"v{index}") or "") if f"v{index}" in _MENTION.groupindex else ""
            if version and version not in seen:
                seen.append(version)
    return [
        f"{label} {version}" if version else label
        for label, seen in versions.items()
        for version in (seen or [""])
    ]


def _version(text: str) -> str:
    words = text.split()
    return " ".join(w.upper() if w.lower() in {"xp", "r2"} else w.capitalize() for w in words)


def _open_questions(said: _Said, environment: _Items) -> list[str]:
    questions = ["What changed just before the problem started?"]
    if not said.error_text:
        questions.append("What is the exact error message (its text, code or a screenshot)?")
    if not said.tried.items:
        questions.append("What has already been tried, and what happened?")
    if not any(not e.startswith("PSA ticket") for e in environment.items):
        questions.append("Which device, OS and app versions are affected?")
    questions.append("Is it one user or device, or several?")
    return questions


def documentation_markdown(
    data: AssessmentInput, likely_cause: str | None, tried: list[str], next_steps: list[str]
) -> str:
    """The escalation write-up, in Markdown: what a PSA ticket note carries.

    Every line from the engineer, the user or the model is one line of valid Markdown
    (``markdown_line``): the notes line by line, the transcript one line a message. The write-up
    stays within ``MAX_DOCUMENT`` characters: each section has a share, the transcript has the
    rest, and a section that does not fit says how many of its lines were left out.
    """
    ticket = f" (ticket #{data.psa_ticket_id})" if data.psa_ticket_id else ""
    notes = [
        f"- {markdown_line(line, 1000)}" for line in data.engineer_notes.splitlines() if plain_text(line)
    ]
    parts = [
        f"## Escalation: {markdown_line(data.session_title, 200)}{ticket}",
        f"Escalated by {markdown_line(data.creator_name, 200)}.",
        "",
        "### Problem",
        markdown_line(data.problem_summary, 2000) or "_No summary given._",
    ]
    left = MAX_DOCUMENT - len("\n".join(parts))
    transcript = (
        f"- **{markdown_line(str(m.get('role', '?')), 20)}**: {markdown_line(str(m.get('content', '')))}"
        for m in data.transcript
    )
    sections: list[tuple[str, Iterable[str], int, int]] = [
        ("Engineer's notes", notes or ["_None._"], len(notes) or 1, 6000),
        ("Likely cause", [markdown_line(likely_cause, 2000)] if likely_cause else [], int(bool(likely_cause)), 4500),
        ("Already tried", (f"- {markdown_line(t, 500)}" for t in tried), len(tried), 4000),
        ("Next steps", (f"{i}. {markdown_line(s, 500)}" for i, s in enumerate(next_steps, 1)), len(next_steps), 3000),
        (f"Transcript ({len(data.transcript)} messages)", transcript, len(data.transcript), MAX_DOCUMENT),
    ]  # fmt: skip
    for heading, lines, count, share in sections:
        if count or heading.startswith("Transcript"):
            section = _section(f"### {heading}", lines, count, min(share, left))
            parts += section
            left -= sum(len(line) + 1 for line in section)
    return "\n".join(parts)


#: Room kept for the line that says how many lines were left out.
_LEFT_OUT_LINE = 40


def _section(heading: str, lines: Iterable[str], count: int, budget: int) -> list[str]:
    """A blank line, ``heading``, and as many of its ``count`` lines as fit in ``budget`` characters
    (newlines included), then a line saying how many did not; nothing if not even the heading fits."""
    out = ["", heading]
    used = len(heading) + 2
    if used + _LEFT_OUT_LINE > budget:
        return []
    for i, line in enumerate(lines):
        room = budget - used - (0 if i == count - 1 else _LEFT_OUT_LINE)
        if len(line) + 1 > room:
            return [*out, "", f"_…and {count - i} more not shown._"]
        out.append(line)
        used += len(line) + 1
    return out
