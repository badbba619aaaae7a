"""The ``aurora`` command: run the platform, migrate, manage users, mint tokens.

Settings are read once here, from ``AURORA_*`` variables, and passed down. Each command imports
what it needs when it runs: building the parser loads nothing of the platform, so that
``aurora --help`` and every command start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agents.catalog import SPECIALISTS
from core.security.permissions import ROLE_PERMISSIONS

if TYPE_CHECKING:
    from core.db import Database
    from core.settings import Settings
    from gateway.supervisor import ChildEvent


def _configure_logging(settings: Settings) -> None:
    import logging

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database for one command, closed afterwards."""
    from core.db import create_database

    database = create_database(settings.effective_database_url)
    try:
        yield database
    finally:
        await database.dispose()


# -- ports: checked before anything starts -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    """A port a command is about to listen on, and the settings that chose it."""

    what: str
    host: str
    port: int
    port_setting: str
    host_setting: str


def gateway_listener(settings: Settings) -> Listener:
    return Listener("the gateway", settings.host, settings.port, "AURORA_PORT", "AURORA_HOST")


def agent_listener(settings: Settings, name: str, port: int | None = None) -> Listener:
    """Where ``aurora agent run NAME [--port PORT]`` listens."""
    from agents.acp.registry import AgentRegistry

    if port is not None:
        setting = "--port"
    else:
        port = AgentRegistry.from_settings(settings).port_of(name)
        setting = "AURORA_AGENT_URLS" if name in settings.agent_urls else "AURORA_AGENT_BASE_PORT"
    return Listener(f"agent {name}", settings.agent_host, port, setting, "AURORA_AGENT_HOST")


def mcp_listener(settings: Settings, port: int | None = None) -> Listener:
    return Listener(
        "the MCP server",
        settings.mcp_host,
        settings.mcp_port if port is None else port,
        "AURORA_MCP_PORT" if port is None else "--port",
        "AURORA_MCP_HOST",
    )


def port_problems(listeners: Iterable[Listener]) -> list[str]:
    """One line for each listener that could not listen now, saying which setting to change:
    its port is taken (by another program, or by a listener before it in ``listeners``), its
    host is no address of this machine, or the port needs privileges. Port 0 is always free."""
    problems: list[str] = []
    claimed: dict[int, Listener] = {}
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            if listener.port == 0:
                continue
            problem = _try_listen(listener, claimed, sockets)
            if problem is not None:
                problems.append(problem)
            claimed.setdefault(listener.port, listener)
    finally:
        for sock in sockets:
            sock.close()
    return problems


def _try_listen(
    listener: Listener, claimed: dict[int, Listener], sockets: list[socket.socket]
) -> str | None:
    """Listen where ``listener`` will (every address its host resolves to, with the options
    asyncio's servers use), keeping the sockets open in ``sockets``; what went wrong, if."""
    host, port = listener.host, listener.port
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return (
            f"{listener.what} cannot listen on {host!r}: no such host (set {listener.host_setting})"
        )
    bound = 0
    for family, kind, proto, _, address in dict.fromkeys(found):
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                continue  # as asyncio does: that address family is not enabled here
            if err.errno == errno.EACCES:
                return (
                    f"port {port} for {listener.what} needs privileges this user lacks: "
                    f"set {listener.port_setting} to a port above 1023"
                )
            if err.errno != errno.EADDRINUSE:
                return f"{listener.what} cannot listen on {host}:{port}: {err.strerror}"
            earlier = claimed.get(port)
            if earlier is not None:
                return (
                    f"port {port} is set for both {earlier.what} ({earlier.port_setting}) and "
                    f"{listener.what} ({listener.port_setting}): change one of them"
                )
            change = (
                f"pass another {listener.port_setting}"
                if listener.port_setting.startswith("--")
                else f"set {listener.port_setting} to a free port"
            )
            return (
                f"port {port} on {host} for {listener.what} is already in use: stop what holds "
                f"it, or {change}"
            )
        bound += 1
    if not bound:
        return (
            f"{listener.what} cannot listen on {host}: not an address of this machine "
            f"(set {listener.host_setting})"
        )
    return None


PORT_SETTLE_SECONDS = 2.0
"""How long a taken port is given to come free before it is reported: the processes of an
instance killed just before (its agents end with it) may still be closing their sockets."""


async def _ports_free(listeners: Sequence[Listener]) -> bool:
    """Whether every listener can listen; says why not, one line each, when not."""
    settle_until = time.monotonic() + PORT_SETTLE_SECONDS
    # A port's release has no event to await: look again, briefly.
    while (problems := port_problems(listeners)) and time.monotonic() < settle_until:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for problem in problems:
        print(f"aurora: {problem}", file=sys.stderr)
    return not problems


# -- the platform --------------------------------------------------------------------------------


class _Progress:
    """What ``aurora up`` says while its children start: each agent ready, how many of how many,
    which are still starting; an agent back after a restart."""

    def __init__(self, agents: Sequence[str]) -> None:
        self.agents = list(agents)
        self.ready: set[str] = set()
        self.seen: set[str] = set()
        self.started = time.monotonic()

    @property
    def pending(self) -> list[str]:
        return [name for name in self.agents if name not in self.ready]

    def on_event(self, event: ChildEvent) -> None:
        if event.kind == "exited":
            self.ready.discard(event.name)
            return
        if event.name not in self.agents:
            print(f"  the MCP tool server is ready at {event.url}", flush=True)
            return
        self.ready.add(event.name)
        if event.name in self.seen:
            print(f"  agent {event.name} is back", flush=True)
            return
        self.seen.add(event.name)
        line = f"  agent {event.name} ready ({len(self.seen)}/{len(self.agents)})"
        if self.pending:
            line += f"; still starting: {', '.join(self.pending)}"
        print(line, flush=True)
        if len(self.seen) == len(self.agents):
            elapsed = time.monotonic() - self.started
            print(f"All {len(self.agents)} agents are ready ({elapsed:.1f} s).", flush=True)

    async def remind(self, every: float = 15.0) -> None:
        """Every ``every`` seconds, the agents that have not been ready once yet."""
        while len(self.seen) < len(self.agents):
            await asyncio.sleep(every)
            waiting = [name for name in self.agents if name not in self.seen]
            if waiting:
                elapsed = time.monotonic() - self.started
                print(f"  still starting after {elapsed:.0f} s: {', '.join(waiting)}", flush=True)


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    import signal

    from gateway.supervisor import AgentSupervisor, agent_command

    agents = list(SPECIALISTS)
    print(
        f"Starting AuroraSOC: the gateway, {len(agents)} specialist agents and the MCP tool "
        f"server (data: {settings.data_dir})",
        flush=True,
    )
    listeners = [
        gateway_listener(settings),
        *(agent_listener(settings, name) for name in agents),
        mcp_listener(settings),
    ]
    if not await _ports_free(listeners):
        return 2

    progress = _Progress(agents)
    children = {name: agent_command(name) for name in agents}
    children["mcp"] = ("mcp",)
    supervisor = AgentSupervisor(children, on_event=progress.on_event)
    # Handled from the start, and first of all by the supervisor: a child that ends because the
    # platform stops is then no crash to report or restart.
    stop = asyncio.Event()

    def stopping() -> None:
        supervisor.request_stop()
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping)

    await _bootstrap(settings)
    if stop.is_set():
        return 0

    def banner(url: str) -> None:
        ready = len(progress.ready)
        joining = ""
        if progress.pending:
            joining = f"; {'the others' if ready else 'they'} join as they start"
        print(
            f"AuroraSOC is up at {url}  (API: {url}/api/v1; agents ready: "
            f"{ready} of {len(agents)}{joining}; data: {settings.data_dir})",
            flush=True,
        )

    # The gateway serves at once: it needs no agent to start, and a call to one that is still
    # starting waits for it within the call's deadline.
    supervisor.launch()
    reminder = asyncio.create_task(progress.remind())
    try:
        from gateway.server import serve

        await serve(settings, banner=banner, stop=stop)
    except OSError as err:  # the port was taken after it was checked
        print(f"aurora: the gateway cannot listen: {err.strerror}", file=sys.stderr)
        return 2
    finally:
        reminder.cancel()
        await supervisor.stop()
    return 0


async def _bootstrap(settings: Settings) -> None:
    """Migrate the database and create the admin when it does not exist (saying so)."""
    from core.db.migrate import upgrade
    from core.security.passwords import PasswordHasher
    from core.settings import ensure_data_dir
    from gateway.users import service as users

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
            "  (shown once; set AURORA_ADMIN_PASSWORD to choose it yourself, or reset it with "
            f"`aurora user passwd {boot.username}`)",
            flush=True,
        )
    elif boot.created:
        print(f"Created admin '{boot.username}' from AURORA_ADMIN_PASSWORD", flush=True)


async def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    if not await _ports_free([gateway_listener(settings)]):
        return 2
    from gateway.app import SchemaNotCurrent
    from gateway.server import serve

    def banner(url: str) -> None:
        print(f"AuroraSOC gateway listening on {url}", flush=True)

    try:
        await serve(settings, banner=banner)
    except SchemaNotCurrent as err:
        print(f"aurora: {err}", file=sys.stderr)
        return 2
    return 0


async def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from core.db.migrate import current_revision, upgrade
    from core.settings import ensure_data_dir

    ensure_data_dir(settings)
    async with _database(settings) as database:
        await upgrade(database, args.revision)
        print(f"database at revision {await current_revision(database)}")
    return 0


async def cmd_db_current(settings: Settings, args: argparse.Namespace) -> int:
    from core.db.migrate import current_revision, head_revision, is_current

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
    if not await _ports_free([agent_listener(settings, args.name, args.port)]):
        return 2
    from agents.runtime.process import run_agent

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
    if not await _ports_free([mcp_listener(settings, args.port)]):
        return 2
    from tools.mcp_server import run_mcp_server

    def ready(url: str) -> None:
        print(f"mcp server listening on {url}", flush=True)

    await run_mcp_server(settings, port=args.port, ready=ready)
    return 0


async def cmd_agent_list(settings: Settings, args: argparse.Namespace) -> int:
    from agents.acp.registry import AgentRegistry

    registry = AgentRegistry.from_settings(settings)
    for name in registry.names():
        print(f"{name:<16} {' '.join(registry.urls(name))}")
    return 0


async def cmd_agent_token(settings: Settings, args: argparse.Namespace) -> int:
    from agents.acp.server import AGENT_TOKEN_TYPE
    from core.security.tokens import TokenService

    issued = TokenService.from_settings(settings).issue(
        args.subject, ttl_seconds=args.ttl, token_type=AGENT_TOKEN_TYPE
    )
    print(issued.token)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("aurora: passwords do not match")
    return first


async def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from core.security.passwords import PasswordHasher
    from core.security.permissions import Role
    from core.validation import validate
    from gateway.users import service as users
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


async def cmd_user_passwd(settings: Settings, args: argparse.Namespace) -> int:
    from core.db import utcnow
    from core.security.passwords import PasswordHasher
    from gateway.auth.service import list_api_keys
    from gateway.users import service as users

    async with _database(settings) as database:
        async with database.session() as db:  # an unknown name is said before any prompt
            await users.get_user_by_username(db=db, username=args.username)
        password = _read_password(args)
        async with database.session() as db:
            user = await users.reset_password(
                db=db,
                hasher=PasswordHasher.from_settings(settings),
                username=args.username,
                password=password,
            )
            now = utcnow()
            keys = [
                key
                for key in await list_api_keys(db=db, user_id=user.id)
                if key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
            ]
    print(
        f"new password set for '{user.username}'; the account is unlocked and every token "
        "issued to it before now is refused"
    )
    if keys:
        print(
            f"{len(keys)} API key(s) of '{user.username}' still work; if the account was "
            "compromised, revoke them (DELETE /api/v1/auth/api-keys/ID)"
        )
    return 0


async def cmd_user_list(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.users import service as users

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
    from gateway.users import service as users

    async with _database(settings) as database, database.session() as db:
        await users.delete_user(db=db, actor_id="", username=args.username)
    print(f"deleted '{args.username}'")
    return 0


async def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from core.security.tokens import TokenService
    from gateway.users import service as users

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
    from gateway.demo import add_demo_parser  # the demo's module loads its libraries lazily

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
    passwd = user.add_parser(
        "passwd",
        help="set a new password (asks twice), unlock the account and end its sessions",
    )
    passwd.add_argument("username")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd.set_defaults(run=cmd_user_passwd)
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
    from core.errors import AuroraError
    from core.settings import load_settings

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
