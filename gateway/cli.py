"""The ``aurora`` command: run the platform, migrate, manage users, mint tokens.

Settings are read once here, from ``AURORA_*`` variables, and passed down. The parser names each
command's function by where it lives (``module:function``), and that module is imported only when
the command runs: building the parser loads nothing of the platform, so that ``aurora --help`` and
every command start in a fraction of a second. The commands live in :mod:`gateway.launcher` (those
that run the platform or a part of it), :mod:`gateway.demo` and :mod:`gateway.admin` (the rest),
and beside what they act on: :mod:`tools.sigma.corpus`, :mod:`evals.cli`,
:mod:`gateway.console.vendor`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from core.security.permissions import ROLE_PERMISSIONS

if TYPE_CHECKING:
    from core.settings import Settings

    Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

LAUNCHER = "gateway.launcher"
ADMIN = "gateway.admin"
EVALS = "evals.cli"
DEMO = "gateway.demo"
CONSOLE = "gateway.console.vendor"

DEMO_TIMEOUT_SECONDS = 120.0
"""How long ``aurora demo`` lets its investigation take, unless ``--timeout`` says."""


def _configure_logging(settings: Settings) -> None:
    import logging

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _command(
    commands: Subcommands, name: str, run: str, summary: str, **defaults: object
) -> argparse.ArgumentParser:
    """Sub-command ``name`` of ``commands``, run by the function ``run`` names
    (``module:function``)."""
    parser = commands.add_parser(name, help=summary)
    parser.set_defaults(run=run, **defaults)
    return parser


def _actions(commands: Subcommands, name: str, summary: str) -> Subcommands:
    """A command ``name`` whose own sub-commands are its actions (``aurora user create``)."""
    return commands.add_parser(name, help=summary).add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION"
    )


def _password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def _add_demo(commands: Subcommands) -> None:
    demo = _command(
        commands,
        "demo",
        f"{DEMO}:cmd_demo",
        "run the platform on a throwaway data directory, seed sample alerts, investigate one "
        "and print the agents' thoughts and the receipt",
    )
    demo.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="shared data directory for the sample alerts (default: $AURORA_SHARED_DATA, "
        "else ../shared/data)",
    )
    demo.add_argument(
        "--builtin", action="store_true", help="use the built-in sample scenario, not the data"
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the demo's data directory and print where"
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=DEMO_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="seconds the investigation may take (default %(default)s)",
    )
    demo.add_argument("--verbose", action="store_true", help="show the platform's own logs")


def _add_users(commands: Subcommands) -> None:
    user = _actions(commands, "user", "manage users")
    create = _command(
        user, "create", f"{ADMIN}:cmd_user_create", "create a user (asks for the password)"
    )
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in ROLE_PERMISSIONS])
    create.add_argument("--email")
    create.add_argument("--full-name")
    _password_stdin(create)
    passwd = _command(
        user,
        "passwd",
        f"{ADMIN}:cmd_user_passwd",
        "set a new password (asks twice), unlock the account and end its sessions",
    )
    passwd.add_argument("username")
    _password_stdin(passwd)
    _command(user, "list", f"{ADMIN}:cmd_user_list", "list users")
    _command(user, "delete", f"{ADMIN}:cmd_user_delete", "delete a user").add_argument("username")


def _add_agents(commands: Subcommands) -> None:
    agent = _actions(commands, "agent", "specialist agents")
    agent_run = _command(agent, "run", f"{LAUNCHER}:cmd_agent_run", "run one specialist agent")
    agent_run.add_argument("name")
    agent_run.add_argument("--port", type=int, default=None)
    _command(agent, "list", f"{ADMIN}:cmd_agent_list", "agents and their WebSocket URLs")
    agent_token = _command(
        agent, "token", f"{ADMIN}:cmd_agent_token", "print a token agents accept (for scripts)"
    )
    agent_token.add_argument("--subject", default="cli", help="who the token speaks for")
    agent_token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")


HAND_OVERS = (
    (
        "export",
        "copy evidence content to a file, recorded in its custody chain",
        "a new file",
        "who takes the copy (recorded)",
    ),
    (
        "transfer",
        "record that custody passed to someone (e.g. a forensic lab)",
        "who receives custody",
        "who hands it over (recorded)",
    ),
)
"""``aurora evidence export`` and ``transfer``: what each does, what its ``--to`` and its
``--actor`` are."""


def _add_evidence(commands: Subcommands) -> None:
    evidence = _actions(commands, "evidence", "evidence administration")
    purge = _command(
        evidence,
        "purge",
        f"{ADMIN}:cmd_evidence_purge",
        "remove the content of evidence whose case was deleted (ends legal hold)",
    )
    purge.add_argument("evidence_id")
    purge.add_argument("--reason", required=True)
    purge.add_argument("--actor", default="admin", help="who authorised it (recorded)")
    for action, summary, to, actor in HAND_OVERS:
        hand_over = _command(
            evidence, action, f"{ADMIN}:cmd_evidence_hand_over", summary, action=action
        )
        hand_over.add_argument("evidence_id")
        hand_over.add_argument("--to", required=True, help=to)
        hand_over.add_argument("--reason", required=True)
        hand_over.add_argument("--actor", required=True, help=actor)
    _command(
        evidence,
        "rotate-key",
        f"{ADMIN}:cmd_evidence_rotate_key",
        "add a new evidence ledger key (older ones stay to verify)",
    )


def _add_eval(commands: Subcommands) -> None:
    """``aurora eval``: the commands live in :mod:`evals.cli` (the ``evals`` extra); only
    their arguments are declared here, so that other commands never import inspect_ai."""
    evals = _actions(commands, "eval", "eval suites: run, compare, gate (the evals extra)")
    _command(evals, "list", f"{EVALS}:cmd_list", "list the suites and their subjects")
    run = _command(evals, "run", f"{EVALS}:cmd_run", "run a suite on a subject")
    run.add_argument("suite", help="a suite (aurora eval list)")
    run.add_argument("--subject", choices=("tool", "specialist", "orchestrator"), default="tool")
    run.add_argument("--agent", help="the specialist to call (default: the suite's)")
    run.add_argument("--model", help="the LLM's name (omit for the built-in analysis)")
    run.add_argument("--base-url", help="its OpenAI-compatible endpoint, e.g. vLLM's .../v1")
    run.add_argument(
        "--api-key-env",
        default="AURORA_EVAL_API_KEY",
        help="the environment variable holding the API key (never the key itself)",
    )
    run.add_argument("--price-per-million", type=float, default=0.0, help="per 1M tokens")
    run.add_argument("--prompt-version", help="prompts/<agent>/vN.md to use, e.g. v2")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="every case, not the fast subset")
    size.add_argument("--limit", type=int, help="at most N cases")
    run.add_argument("--log-dir", type=Path, default=Path("eval-logs"))
    run.add_argument("--json", type=Path, help="also write the figures to this file")
    run.add_argument(
        "--running-agents",
        action="store_true",
        help="call the agents the platform runs (aurora up) instead of starting them",
    )
    run.add_argument("--max-samples", type=int, default=8, help="cases in flight at once")
    compare = _command(evals, "compare", f"{EVALS}:cmd_compare", "compare two runs case by case")
    compare.add_argument("a", type=Path, help="the first run's log")
    compare.add_argument("b", type=Path, help="the second run's log")
    compare.add_argument("--show", type=int, default=20, help="flipped cases to list")
    gate = _command(evals, "gate", f"{EVALS}:cmd_gate", "check the figures against thresholds")
    gate.add_argument("--thresholds", type=Path, help="default: the shipped thresholds.toml")
    gate.add_argument("--full", action="store_true", help="every case of each suite")
    gate.add_argument("--ci", action="store_true", help="only the gates CI runs (fast ones)")
    gate.add_argument("--log-dir", type=Path, default=Path("eval-logs"))
    fetch = _command(
        evals, "fetch", f"{EVALS}:cmd_fetch", "fetch the suites' datasets from a mirror"
    )
    fetch.add_argument("--base-url", required=True, help="the mirror: URL/<path> per file")
    fetch.add_argument("--dest", type=Path, help="default: $AURORA_SHARED_DATA or <data_dir>")
    fetch.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    verify = _command(evals, "verify", f"{EVALS}:cmd_verify", "check the datasets' checksums")
    verify.add_argument("--data", type=Path, help="default: $AURORA_SHARED_DATA")


def _add_console(commands: Subcommands) -> None:
    console = _actions(commands, "console", "the web console")
    vendor = _command(
        console,
        "vendor",
        f"{CONSOLE}:cmd_console_vendor",
        "download Preact and htm as the lock names them (integrity and sha256 verified) into "
        "the console's static/vendor",
    )
    vendor.add_argument(
        "--registry",
        metavar="URL",
        help="the npm registry or mirror to download from (default https://registry.npmjs.org)",
    )
    mode = vendor.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="download nothing: check that the vendored files match the lock",
    )
    mode.add_argument(
        "--relock",
        action="store_true",
        help="record the sha256 of the files made in the lock (after a version bump)",
    )
    vendor.add_argument(
        "--lock", type=Path, metavar="FILE", help="default: gateway/console/vendor.json"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora", description="AuroraSOC: AI specialist agents beside SOC analysts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(
        commands,
        "up",
        f"{LAUNCHER}:cmd_up",
        "migrate, bootstrap the admin, run the whole platform",
    )
    _add_demo(commands)
    _command(commands, "gateway", f"{LAUNCHER}:cmd_gateway", "run the API gateway alone")

    db = _actions(commands, "db", "database schema")
    db_upgrade = _command(
        db, "upgrade", f"{ADMIN}:cmd_db_upgrade", "migrate to the newest schema (or REVISION)"
    )
    db_upgrade.add_argument("revision", nargs="?", default="head")
    _command(db, "current", f"{ADMIN}:cmd_db_current", "show the schema revision")

    _add_users(commands)
    _add_agents(commands)
    _add_evidence(commands)
    _add_eval(commands)
    _add_console(commands)
    rules = _actions(commands, "rules", "detection rules (Sigma)")
    fetch = _command(
        rules,
        "fetch",
        "tools.sigma.corpus:cmd_rules_fetch",
        "download a SigmaHQ release archive, verified by its sha256, into the rules directory",
    )
    fetch.add_argument("--url", required=True, help="the release archive (.zip or .tar.gz)")
    fetch.add_argument("--sha256", required=True, help="its published sha256 (refused if not)")
    fetch.add_argument("--dest", type=Path, help="default: <data_dir>/sigma")

    mcp = _command(
        commands,
        "mcp",
        f"{LAUNCHER}:cmd_mcp",
        "serve the analysis tools over MCP (streamable HTTP)",
    )
    mcp.add_argument("--port", type=int, default=None)
    token = _command(
        commands, "token", f"{ADMIN}:cmd_token", "print an access token for USERNAME (for scripts)"
    )
    token.add_argument("username")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    return parser


def resolve(run: str) -> Command:
    """The command function ``run`` names (``module:function``), its module imported now."""
    module, _, name = run.partition(":")
    return cast("Command", getattr(importlib.import_module(module), name))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from core import eventloop
    from core.errors import AuroraError
    from core.settings import load_settings

    try:
        settings = load_settings()
    except ValidationError as err:
        # Without the input: pydantic would print every setting given, secrets among them.
        print("aurora: invalid configuration:", file=sys.stderr)
        for problem in err.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"]).upper()
            name = f"AURORA_{where}: " if where else ""
            print(f"  {name}{problem['msg']}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"aurora: invalid configuration:\n{err}", file=sys.stderr)
        return 2
    try:
        loop = eventloop.loop_factory(settings.event_loop)
    except RuntimeError as err:
        print(f"aurora: invalid configuration:\n{err}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        command = resolve(args.run)
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("inspect_ai"):
            raise
        print(
            "aurora eval needs the evals extra: pip install -e '.[evals]' (from the checkout)",
            file=sys.stderr,
        )
        return 2
    try:
        return int(asyncio.run(command(settings, args), loop_factory=loop))
    except AuroraError as err:
        detail = f" ({err.detail})" if err.detail else ""
        print(f"aurora: {err.message}{detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
