"""Chat stream latency: time to first token through the gateway against the model server alone.

A scripted OpenAI-compatible model (:mod:`evals.obedient`, which streams its answer word by
word as vLLM does) runs in this process on loopback; the gateway runs in a process of its own
(as ``aurora gateway`` runs it) pointed at that model. In alternating rounds, each request a
fresh conversation with the same question:

- model: the model server alone, through the platform's own client
  (:meth:`core.llm.LLMBackend.stream`) with the assistant's system prompt and tools (the same
  request the gateway makes): request sent to the first text chunk;
- gateway: ``POST /api/v1/chat/stream`` as an analyst: request sent to the first ``token``
  event (rate limit charged, session opened, message stored, injection detector run, the
  model's stream scrubbed and relayed).

Reported: median and p90 of each, the gateway's added milliseconds and the ratio
gateway/model; the whole turn's time too (to the stored ``message`` event).

    .venv/bin/python -m benchmarks.chat_stream [--requests 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
    run_gateway,
    wait_serving,
)
from core.llm import LLMBackend
from core.llm.fence import FENCE_RULES
from core.llm.types import system_message, user_message
from core.settings import Settings
from evals.obedient import DEFAULT_MODEL, ObedientModel
from gateway.chat.tools import TOOLS
from prompts.loader import load_prompt

QUESTION = "What should an analyst check first when a workstation beacons at steady intervals?"
"""A question the model answers in text, calling no tool (a tool's time is not the stream's)."""


def bench_settings(data_dir: Path, port: int, model_url: str) -> Settings:
    """A benchmark gateway's settings, its chat pointed at the model."""
    return gateway_settings(
        data_dir, port, llm_base_url=model_url, llm_model=DEFAULT_MODEL, llm_max_retries=0
    )


async def model_alone(backend: LLMBackend, system: str) -> tuple[float, float]:
    """Seconds to the first text chunk, and to the end of the stream."""
    started = time.perf_counter()
    first = None
    messages = [system_message(system), user_message(QUESTION)]
    async with backend.stream(messages, tools=[tool.spec for tool in TOOLS]) as stream:
        async for piece in stream:
            if first is None and isinstance(piece, str) and piece:
                first = time.perf_counter() - started
    return (first or float("nan")), time.perf_counter() - started


async def through_gateway(session: ClientSession, url: str, token: str) -> tuple[float, float]:
    """Seconds to the first ``token`` event, and to the ``message`` event."""
    started = time.perf_counter()
    first = None
    async with session.post(
        f"{url}/api/v1/chat/stream",
        json={"message": QUESTION},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"chat stream answered {response.status}: {await response.text()}")
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "token" and first is None:
                first = time.perf_counter() - started
            elif line.startswith("data:") and event == "message":
                break
    return (first or float("nan")), time.perf_counter() - started


def describe(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(percentile(ordered, 0.9) * 1000, 2),
    }


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    async with ObedientModel() as model:
        settings = bench_settings(tmp / "data", free_port(), model.base_url)
        await prepare(settings)
        process = multiprocessing.get_context("spawn").Process(
            target=run_gateway, args=(settings,), name="gateway", daemon=True
        )
        process.start()
        url = f"http://{HOST}:{settings.port}"
        system = f"{load_prompt('chat_assistant').text}\n\n{FENCE_RULES}"
        times: dict[str, list[float]] = {"model": [], "gateway": []}
        whole: dict[str, list[float]] = {"model": [], "gateway": []}
        try:
            async with (
                ClientSession(timeout=ClientTimeout(total=60)) as session,
                LLMBackend(base_url=model.base_url, model=DEFAULT_MODEL, max_retries=0) as llm,
            ):
                await wait_serving(session, f"{url}/api/v1/auth/providers", process.is_alive)
                token = await login(session, url, "admin", ADMIN_PASSWORD, process.is_alive)
                async with session.patch(
                    f"{url}/api/v1/settings/runtime",
                    json={"chat_rate_limit_per_minute": 600},
                    headers={"Authorization": f"Bearer {token}"},
                ) as patched:
                    if patched.status != 200:
                        raise RuntimeError(f"runtime settings: {await patched.text()}")
                for _ in range(3):  # warm both paths (not counted)
                    await model_alone(llm, system)
                    await through_gateway(session, url, token)
                for round_index in range(args.rounds):
                    for index in range(args.requests):
                        order = (
                            ("model", "gateway")
                            if (round_index + index) % 2
                            else (
                                "gateway",
                                "model",
                            )
                        )
                        for name in order:
                            if name == "model":
                                first, total = await model_alone(llm, system)
                            else:
                                first, total = await through_gateway(session, url, token)
                            times[name].append(first)
                            whole[name].append(total)
                    print(
                        f"round {round_index + 1}: "
                        + ", ".join(
                            f"{name} first token p50 {describe(times[name])['p50_ms']} ms"
                            for name in times
                        ),
                        file=sys.stderr,
                    )
        finally:
            process.terminate()
            process.join(30)
    model_p50 = describe(times["model"])["p50_ms"]
    gateway_p50 = describe(times["gateway"])["p50_ms"]
    return {
        "requests": len(times["model"]),
        "first_token": {name: describe(values) for name, values in times.items()},
        "whole_turn": {name: describe(values) for name, values in whole.items()},
        "gateway_added_ms": round(gateway_p50 - model_p50, 2),
        "ratio_gateway_over_model": round(gateway_p50 / model_p50, 2) if model_p50 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aurora-bench-chat-") as folder:
        result = asyncio.run(run(args, Path(folder)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
