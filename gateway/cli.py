"""The ``aurora`` command: run the platform, migrate, manage users, mint tokens.

Settings are read once here, from ``AURORA_*`` variables, and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from agents.acp.registry import AgentRegistry
from agents.acp.server import AGENT_TOKEN_TYPE
from agents.catalog import SPECIALISTS
from agents.runtime.process import run_agent
from core.db import Database, create_database
from core.db.migrate import current_revision, head_revision, is_current, upgrade
from core.errors import AuroraError
from core.security.passwords import PasswordHasher
from core.security.permissions import ROLE_PERMISSIONS, Role
from core.security.tokens import TokenService
from core.settings import Settings, ensure_data_dir, load_settings
from gateway.app import SchemaNotCurrent
from gateway.demo import add_demo_parser
from gateway.server import serve
from gateway.supervisor import AgentSupervisor, agent_command
from gateway.users import service as users
from tools.mcp_server import run_mcp_server

log = logging.getLogger("aurora")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database for one command, closed afterwards."""
    database = create_database(settings.effective_database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    ensure_data_dir(settings)
    async with _database(settings) as database:
        await upgrade(database)
        async with database.session() as db:
            boot = await users.bootstrap_admin(
                db=db,
                hasher=PasswordHasher.from_settings(settings),
                username=settings.admin_username,
                password=(
                    settings.admin_password.get_secret_value() if settings.admin_password else None
                ),
            )
    if boot.generated_password is not None:
        print(
            f"Created admin '{boot.username}' with generated password: {boot.generated_password}\n"
            "  (shown once; set AURORA_ADMIN_PASSWORD to choose it yourself)",
            flush=True,
        )
    elif boot.created:
        print(f"Created admin '{boot.username}' from AURORA_ADMIN_PASSWORD", flush=True)

    children = {name: agent_command(name) for name in SPECIALISTS}
    children["mcp"] = ("mcp",)
    supervisor = AgentSupervisor(children)
    started_children = await supervisor.start()
    missing = sorted(name for name, url in started_children.items() if url is None)
    if missing:
        print(f"aurora: services that did not start: {', '.join(missing)}", file=sys.stderr)

    def banner(url: str) -> None:
        started = len(SPECIALISTS) - len(set(missing) & set(SPECIALISTS))
        print(
            f"AuroraSOC is up at {url}  (API: {url}/api/v1, {started} agent(s), "
            f"data: {settings.data_dir})",
            flush=True,
        )

    try:
        await serve(settings, banner=banner)
    finally:
        await supervisor.stop()
    return 0


async def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    def banner(url: str) -> None:
        print(f"AuroraSOC gateway listening on {url}", flush=True)

    try:
        await serve(settings, banner=banner)
    except SchemaNotCurrent as err:
        print(f"aurora: {err}", file=sys.stderr)
        return 2
    return 0


async def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    ensure_data_dir(settings)
    async with _database(settings) as database:
        await upgrade(database, args.revision)
        print(f"database at revision {await current_revision(database)}")
    return 0


async def cmd_db_current(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as database:
        current = await current_revision(database)
        head = head_revision(settings.effective_database_url)
        state = "current" if await is_current(database) else "behind: run `aurora db upgrade`"
        print(f"database at revision {current or '(none)'}, newest {head} ({state})")
    return 0


async def cmd_agent_run(settings: Settings, args: argparse.Namespace) -> int:
    if args.name not in SPECIALISTS:
        print(
            f"aurora: no agent named {args.name!r}; known: {', '.join(SPECIALISTS)}",
            file=sys.stderr,
        )
        return 2

    def ready(url: str) -> None:
        print(f"agent {args.name} listening on {url}", flush=True)

    await run_agent(args.name, settings, port=args.port, ready=ready)
    return 0


async def cmd_evidence_purge(settings: Settings, args: argparse.Namespace) -> int:
    from core.blobs import BlobStore
    from core.ledger import Keyring
    from gateway.cases.evidence.service import purge_evidence

    blobs = BlobStore(settings.data_dir / "evidence", max_bytes=settings.evidence_max_bytes)
    async with _database(settings) as database, database.session() as db:
        item = await purge_evidence(
            db=db,
            blobs=blobs,
            keys=Keyring.from_settings(settings),
            evidence_id=args.evidence_id,
            actor=args.actor,
            reason=args.reason,
        )
    print(f"purged {item.id} (sha256 {item.sha256}); the purge is in its ledger")
    return 0


async def cmd_evidence_export(settings: Settings, args: argparse.Namespace) -> int:
    from core.blobs import BlobStore
    from core.ledger import Keyring
    from gateway.cases.evidence.service import hand_over

    blobs = BlobStore(settings.data_dir / "evidence", max_bytes=settings.evidence_max_bytes)
    target = Path(args.to)
    if target.exists():  # noqa: ASYNC240 - a one-shot command, nothing else on the loop
        print(f"aurora: {target} exists; not overwriting evidence copies", file=sys.stderr)
        return 2
    details = {"to": str(target)} if args.action == "export" else {"to": args.to}
    async with _database(settings) as database, database.session() as db:
        item, content = await hand_over(
            db=db,
            blobs=blobs,
            keys=Keyring.from_settings(settings),
            evidence_id=args.evidence_id,
            actor=args.actor,
            action=args.action,
            reason=args.reason,
            details=details,
        )
    if args.action == "export":
        with target.open("xb") as out:  # noqa: ASYNC230 - see above
            for chunk in content:
                out.write(chunk)
        print(f"exported {item.id} to {target} (sha256 {item.sha256}); recorded in its ledger")
    else:
        print(f"custody of {item.id} transferred to {args.to}; recorded in its ledger")
    return 0


async def cmd_evidence_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    from core.ledger import Keyring

    keys = Keyring.from_settings(settings)
    key = keys.rotate()
    print(
        f"ledger key {key.id} seals new entries; {len(keys.ids()) - 1} older key(s) kept "
        f"read-only in {keys.directory} to verify the entries they sealed"
    )
    return 0


async def cmd_mcp(settings: Settings, args: argparse.Namespace) -> int:
    def ready(url: str) -> None:
        print(f"mcp server listening on {url}", flush=True)

    await run_mcp_server(settings, port=args.port, ready=ready)
    return 0


async def cmd_agent_list(settings: Settings, args: argparse.Namespace) -> int:
    registry = AgentRegistry.from_settings(settings)
    for name in registry.names():
        print(f"{name:<16} {' '.join(registry.urls(name))}")
    return 0


async def cmd_agent_token(settings: Settings, args: argparse.Namespace) -> int:
    issued = TokenService.from_settings(settings).issue(
        args.subject, ttl_seconds=args.ttl, token_type=AGENT_TOKEN_TYPE
    )
    print(issued.token)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("aurora: passwords do not match")
    return first


async def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from core.validation import validate
    from gateway.users.schemas import UserCreate

    role = Role(args.role)
    password: str | None = None
    if role not in {Role.SERVICE_AGENT, Role.SERVICE_RESPONDER} or args.password_stdin:
        password = _read_password(args)
    async with _database(settings) as database:
        if password is not None:
            validate(
                UserCreate,
                {
                    "username": args.username,
                    "password": password,
                    "role": role,
                    "email": args.email,
                    "full_name": args.full_name,
                },
            )
        async with database.session() as db:
            user = await users.create_user(
                db=db,
                hasher=PasswordHasher.from_settings(settings),
                username=args.username,
                password=password,
                role=role,
                email=args.email,
                full_name=args.full_name,
            )
    print(f"created {user.role} '{user.username}' ({user.id})")
    return 0


async def cmd_user_list(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as database, database.session() as db:
        found, total = await users.list_users(db=db, limit=10_000, offset=0)
    print(f"{'USERNAME':<24} {'ROLE':<18} {'ACTIVE':<6} CREATED")
    for user in found:
        print(
            f"{user.username:<24} {user.role:<18} {'yes' if user.is_active else 'no':<6} "
            f"{user.created_at:%Y-%m-%d %H:%M}"
        )
    print(f"{total} user(s)")
    return 0


async def cmd_user_delete(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as database, database.session() as db:
        await users.delete_user(db=db, actor_id="", username=args.username)
    print(f"deleted '{args.username}'")
    return 0


async def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as database, database.session() as db:
        user = await users.get_user_by_username(db=db, username=args.username)
    issued = TokenService.from_settings(settings).issue(
        user.id, ttl_seconds=args.ttl, claims={"username": user.username}
    )
    print(issued.token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora", description="AuroraSOC: AI specialist agents beside SOC analysts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="migrate, bootstrap the admin, run the whole platform")
    up.set_defaults(run=cmd_up)
    add_demo_parser(commands)
    gateway = commands.add_parser("gateway", help="run the API gateway alone")
    gateway.set_defaults(run=cmd_gateway)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    db_upgrade = db.add_parser("upgrade", help="migrate to the newest schema (or REVISION)")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(run=cmd_db_upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(run=cmd_db_current)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    create = user.add_parser("create", help="create a user (asks for the password)")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in ROLE_PERMISSIONS])
    create.add_argument("--email")
    create.add_argument("--full-name")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.set_defaults(run=cmd_user_create)
    user.add_parser("list", help="list users").set_defaults(run=cmd_user_list)
    delete = user.add_parser("delete", help="delete a user")
    delete.add_argument("username")
    delete.set_defaults(run=cmd_user_delete)

    agent = commands.add_parser("agent", help="specialist agents").add_subparsers(
        dest="agent_command", required=True, metavar="ACTION"
    )
    agent_run = agent.add_parser("run", help="run one specialist agent")
    agent_run.add_argument("name")
    agent_run.add_argument("--port", type=int, default=None)
    agent_run.set_defaults(run=cmd_agent_run)
    agent.add_parser("list", help="agents and their WebSocket URLs").set_defaults(
        run=cmd_agent_list
    )
    agent_token = agent.add_parser("token", help="print a token agents accept (for scripts)")
    agent_token.add_argument("--subject", default="cli", help="who the token speaks for")
    agent_token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    agent_token.set_defaults(run=cmd_agent_token)

    evidence = commands.add_parser("evidence", help="evidence administration").add_subparsers(
        dest="evidence_command", required=True, metavar="ACTION"
    )
    purge = evidence.add_parser(
        "purge", help="remove the content of evidence whose case was deleted (ends legal hold)"
    )
    purge.add_argument("evidence_id")
    purge.add_argument("--reason", required=True)
    purge.add_argument("--actor", default="admin", help="who authorised it (recorded)")
    purge.set_defaults(run=cmd_evidence_purge)

    export = evidence.add_parser(
        "export", help="copy evidence content to a file, recorded in its custody chain"
    )
    export.add_argument("evidence_id")
    export.add_argument("--to", required=True, help="a new file")
    export.add_argument("--reason", required=True)
    export.add_argument("--actor", required=True, help="who takes the copy (recorded)")
    export.set_defaults(run=cmd_evidence_export, action="export")
    transfer = evidence.add_parser(
        "transfer", help="record that custody passed to someone (e.g. a forensic lab)"
    )
    transfer.add_argument("evidence_id")
    transfer.add_argument("--to", required=True, help="who receives custody")
    transfer.add_argument("--reason", required=True)
    transfer.add_argument("--actor", required=True, help="who hands it over (recorded)")
    transfer.set_defaults(run=cmd_evidence_export, action="transfer")
    evidence.add_parser(
        "rotate-key", help="add a new evidence ledger key (older ones stay to verify)"
    ).set_defaults(run=cmd_evidence_rotate_key)

    mcp = commands.add_parser("mcp", help="serve the analysis tools over MCP (streamable HTTP)")
    mcp.add_argument("--port", type=int, default=None)
    mcp.set_defaults(run=cmd_mcp)

    token = commands.add_parser("token", help="print an access token for USERNAME (for scripts)")
    token.add_argument("username")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.set_defaults(run=cmd_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as err:
        print(f"aurora: invalid configuration:\n{err}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        return int(asyncio.run(args.run(settings, args)))
    except AuroraError as err:
        detail = f" ({err.detail})" if err.detail else ""
        print(f"aurora: {err.message}{detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
