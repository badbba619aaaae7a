"""The analysis tools a model may call, shared by the specialists that judge behaviour:
decode a text, extract its indicators, run the detection rules (Sigma and the code rules of
:mod:`tools.behaviour`), map it to ATT&CK.

Each call goes through the request's :class:`~agents.runtime.specialist.ToolTrace`, so it is
streamed to the caller and kept as evidence.
"""

from __future__ import annotations

from typing import Any

from agents.runtime.specialist import ToolTrace, string_tool
from core.errors import ValidationFailed
from core.llm.types import Tool
from tools.attack import AttackKB
from tools.behaviour import ProcessView, RuleHit, scan_command, scan_process
from tools.decode import unfold
from tools.ioc import Ioc, indicators_in
from tools.sigma.engine import SigmaEngine


def text_argument(arguments: dict[str, Any], name: str) -> str:
    """A tool argument that must be a non-empty string (else ValidationFailed, which the
    tool loop reports back to the model)."""
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            [
                {
                    "loc": [name],
                    "msg": f"'{name}' must be a non-empty string",
                    "type": "missing",
                }
            ]
        )
    return value


def hit_rows(hits: list[RuleHit]) -> list[dict[str, Any]]:
    """Rule hits as the model reads them."""
    return [
        {
            "rule": h.rule.id,
            "title": h.rule.title,
            "techniques": list(h.rule.techniques),
            "severity": h.rule.severity,
            "where": h.source,
            "excerpt": h.excerpt,
        }
        for h in hits
    ]


def ioc_summary(iocs: list[Ioc]) -> str:
    """A traced indicator extraction's summary: how many, and the first eight."""
    if not iocs:
        return "no indicators"
    return f"{len(iocs)} indicator(s): " + ", ".join(f"{i.type}:{i.value}" for i in iocs[:8])


def analysis_tools(kb: AttackKB, trace: ToolTrace, engine: SigmaEngine) -> list[Tool]:
    """The analysis tools the model may call (decode, extract indicators, a scan with
    ``engine``'s Sigma rules, ATT&CK mapping); each call goes through ``trace``, so it is
    streamed and kept as evidence."""

    async def decode(arguments: dict[str, Any]) -> object:
        text = text_argument(arguments, "text")

        layers = await trace.compute(
            "decode_payload",
            {"chars": len(text)},
            lambda: unfold(text),
            lambda found: (
                f"{len(found)} layer(s): "
                + "; ".join(f"{x.method}: {x.text[:80]}" for x in found[:3])
            ),
            thread=True,
        )
        return [{"method": x.method, "text": x.text[:20_000]} for x in layers]

    async def iocs(arguments: dict[str, Any]) -> object:
        text = text_argument(arguments, "text")

        found = await trace.compute(
            "extract_iocs",
            {"chars": len(text)},
            lambda: indicators_in([text]),
            lambda result: f"{len(result)} indicator(s)",
            thread=True,
        )
        return [ioc.model_dump(exclude_none=True) for ioc in found]

    async def scan(arguments: dict[str, Any]) -> object:
        text = text_argument(arguments, "command_line")
        parent = arguments.get("parent_image")
        image = arguments.get("image")

        def rules() -> list[RuleHit]:
            hits = scan_command(
                engine,
                text,
                "command_line",
                image=image if isinstance(image, str) else "",
                parent_image=parent if isinstance(parent, str) else "",
            )
            if isinstance(image, str) and image:
                hits += scan_process(ProcessView(image=image), "process")
            return hits

        hits = await trace.compute(
            "scan_command_line",
            {"chars": len(text)},
            rules,
            lambda found: (
                "; ".join(dict.fromkeys(h.rule.title for h in found))[:2000] or "no rule fired"
            ),
            thread=True,
        )
        return hit_rows(hits)

    return [
        string_tool(
            "decode_payload",
            "Peel encodings and obfuscation (PowerShell -EncodedCommand, base64,"
            " URL, hex, character codes, concatenation) off a text, layer by layer.",
            decode,
            "text",
        ),
        string_tool(
            "extract_iocs",
            "Indicators (IPs, domains, URLs, hashes, e-mails, registry keys,"
            " CVEs) in a text, normalised and refanged.",
            iocs,
            "text",
        ),
        string_tool(
            "scan_command_line",
            "Run the detection rules (Sigma rules over the command line as a process"
            " creation, with image and parent_image when given, and over its decoded layers;"
            " obfuscation and image checks) over a command line or script.",
            scan,
            "command_line",
            optional=("image", "parent_image"),
        ),
        attack_tool(kb, trace),
    ]


def attack_tool(kb: AttackKB, trace: ToolTrace) -> Tool:
    """``map_attack_techniques``: the ATT&CK techniques a text describes, best five first."""

    async def attack(arguments: dict[str, Any]) -> object:
        text = text_argument(arguments, "text")

        async def run() -> list[Any]:
            return list(kb.map_text(text, limit=5))

        found = await trace.call(
            "map_attack_techniques",
            {"chars": len(text)},
            run,
            lambda result: ", ".join(f"{m[0]} ({m[1]:.2f})" for m in result) or "none",
        )
        return [m._asdict() for m in found]

    return string_tool(
        "map_attack_techniques",
        "ATT&CK techniques a piece of text describes, best first.",
        attack,
        "text",
    )
