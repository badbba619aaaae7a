"""Running the platform on one machine: what ``aurora up``, ``aurora demo`` and ``aurora gateway``
share, and the commands that run one of its processes alone (``aurora agent run``, ``aurora mcp``).

A platform starts in one order. The ports it will listen on are checked before anything starts (a
port it cannot have is one line naming the setting to change, and exit 2). The children (the
specialist agents, the MCP server) start under the :class:`~gateway.supervisor.AgentSupervisor`,
and while they load, the database is migrated and the admin created. The gateway serves. SIGINT
or SIGTERM, or leaving the :class:`Launcher`, stops the gateway, then the children.

Only the standard library is imported here at first: the platform's libraries load when a command
runs, so that the ``aurora`` parser stays light.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NotRequired, Self, TypedDict

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from aiohttp import web

    from core.db import Database
    from core.security.permissions import Role
    from core.settings import Settings
    from gateway.supervisor import ChildEvent
    from gateway.users.service import Bootstrap

log = logging.getLogger("aurora")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
            return _bind_problem(listener, err, claimed.get(port))
        bound += 1
    if not bound:
        return (
            f"{listener.what} cannot listen on {host}: not an address of this machine "
            f"(set {listener.host_setting})"
        )
    return None


def _bind_problem(listener: Listener, err: OSError, earlier: Listener | None) -> str:
    """The line for a port ``listener`` could not bind; ``earlier``: the listener before it in
    the same check that claimed the port, if one did."""
    host, port = listener.host, listener.port
    if err.errno == errno.EACCES:
        return (
            f"port {port} for {listener.what} needs privileges this user lacks: "
            f"set {listener.port_setting} to a port above 1023"
        )
    if err.errno != errno.EADDRINUSE:
        return f"{listener.what} cannot listen on {host}:{port}: {err.strerror}"
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
        f"port {port} on {host} for {listener.what} is already in use: stop what holds it, "
        f"or {change}"
    )


PORT_SETTLE_SECONDS = 2.0
"""How long a taken port is given to come free before it is reported: the processes of an
instance killed just before (its agents end with it) may still be closing their sockets."""


async def ports_free(listeners: Sequence[Listener]) -> bool:
    """Whether every listener can listen; says why not, one line each, when not."""
    settle_until = time.monotonic() + PORT_SETTLE_SECONDS
    # A port's release has no event to await: look again, briefly.
    while (problems := port_problems(listeners)) and time.monotonic() < settle_until:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for problem in problems:
        print(f"aurora: {problem}", file=sys.stderr)
    return not problems


# -- the database --------------------------------------------------------------------------------


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database for one command, closed afterwards."""
    from core.db import create_database

    database = create_database(settings.effective_database_url)
    try:
        yield database
    finally:
        await database.dispose()


class Account(TypedDict):
    """A user to create beside the admin when the platform's database is prepared (the
    arguments of :func:`gateway.users.service.create_user` that say who)."""

    username: str
    password: str
    role: Role
    full_name: NotRequired[str]


async def prepare_database(settings: Settings, *, accounts: Iterable[Account] = ()) -> Bootstrap:
    """Migrate the database to the newest schema and create the admin unless it exists (with
    ``AURORA_ADMIN_PASSWORD``, else a generated password the result carries), then ``accounts``."""
    from core.db.migrate import upgrade
    from core.security.passwords import PasswordHasher
    from core.settings import ensure_data_dir
    from gateway.users import service as users

    ensure_data_dir(settings)
    hasher = PasswordHasher.from_settings(settings)
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    async with open_database(settings) as database:
        await upgrade(database)
        async with database.session() as db:
            boot = await users.bootstrap_admin(
                db=db, hasher=hasher, username=settings.admin_username, password=password
            )
            for account in accounts:
                await users.create_user(db=db, hasher=hasher, **account)
    return boot


# -- the launcher --------------------------------------------------------------------------------


class Stopped(Exception):
    """The platform's work was cut short by ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Launcher:
    """One run of the platform on this machine, as an ``async with`` block: it supervises the
    ``children`` (``aurora <command>`` each, see :class:`~gateway.supervisor.AgentSupervisor`),
    serves the gateway, and on leaving stops the gateway, then the children.

    SIGINT and SIGTERM are handled from the start, first of all by the supervisor, so that a child
    that ends because the platform stops is no crash to report or restart. They set :meth:`wait`
    free; with ``interrupt`` they also cancel the block's work, which leaves it with
    :class:`Stopped`. ``environment``: the children's whole environment (None: this process's);
    ``gateway_socket``: where the gateway will serve (see :func:`reserve_port`), which it closes.
    """

    def __init__(
        self,
        children: Mapping[str, tuple[str, ...]],
        *,
        environment: Mapping[str, str] | None = None,
        on_event: Callable[[ChildEvent], None] | None = None,
        interrupt: bool = False,
        gateway_socket: socket.socket | None = None,
    ) -> None:
        from gateway.supervisor import AgentSupervisor

        self.supervisor = AgentSupervisor(children, environment=environment, on_event=on_event)
        self.signum: int | None = None
        self._interrupt = interrupt
        self._stop = asyncio.Event()
        self._task: asyncio.Task[object] | None = None
        self._exiting = False
        self._holding = False
        self._gateway_socket = gateway_socket
        self._runner: web.AppRunner | None = None

    @property
    def stopping(self) -> bool:
        """Whether SIGINT or SIGTERM came."""
        return self._stop.is_set()

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._signalled, signum)
        return self

    def _signalled(self, signum: int) -> None:
        self.supervisor.request_stop()
        self._stop.set()
        if self.signum is None:
            self.signum = signum
            if self._interrupt and not (self._exiting or self._holding) and self._task is not None:
                self._task.cancel()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._exiting = True  # a signal now interrupts nothing: the platform is stopping
        try:
            if self._runner is not None:
                log.info("shutting down")
                await self._runner.cleanup()
        finally:
            await self.supervisor.stop()
            if self._gateway_socket is not None:
                self._gateway_socket.close()
            loop = asyncio.get_running_loop()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        if (
            self._interrupt
            and self.signum is not None
            and isinstance(error, asyncio.CancelledError)
        ):
            if self._task is not None:
                self._task.uncancel()
            raise Stopped(self.signum) from None

    async def uninterrupted[T](self, work: Awaitable[T]) -> T:
        """``work`` to its end even when SIGINT or SIGTERM comes meanwhile (a migration cut in
        the middle leaves its files still being written as the data directory is removed),
        then :class:`Stopped` if one came."""
        self._holding = True
        try:
            done = await work
        finally:
            self._holding = False
        if self._interrupt and self.signum is not None:
            raise Stopped(self.signum)
        return done

    def start_children(self) -> None:
        """Start every child (returns at once; each keeps being started until the launcher
        exits)."""
        self.supervisor.launch()

    async def children_ready(self, seconds: float) -> dict[str, str | None]:
        """Start the children and wait up to ``seconds`` for them all: each one's URL (None for
        one not up yet)."""
        self.start_children()
        await self.supervisor.wait_ready(seconds)
        return self.supervisor.urls

    async def serve(self, settings: Settings) -> str:
        """Serve the gateway with ``settings`` until the launcher exits, on its
        ``gateway_socket``, else on the configured host and port; its URL. OSError when it
        cannot listen."""
        from aiohttp import web

        from gateway.app import create_app
        from gateway.server import GatewayRunner

        runner = GatewayRunner(create_app(settings), settings)
        await runner.setup()
        self._runner = runner
        # Everything loaded by now (the libraries, the route table, the resources) lives as long
        # as the process: keep it out of the collector's full passes, each of which would walk
        # some 300k objects (about 180 ms on two cores, a p99 outlier for a request behind it).
        gc.collect()
        gc.freeze()
        if self._gateway_socket is None:
            await web.TCPSite(runner, settings.host, settings.port).start()
            return settings.public_url
        await web.SockSite(runner, self._gateway_socket).start()
        host, port = self._gateway_socket.getsockname()[:2]
        return f"http://{host}:{port}"

    async def wait(self) -> None:
        """Until SIGINT or SIGTERM."""
        await self._stop.wait()


def reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port of ``host`` (IPv4), for a server to listen on later: what
    will connect to it can be told where before it serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(launcher: Launcher, settings: Settings) -> str | None:
    """The gateway's URL once it serves; None when it cannot listen (said)."""
    try:
        return await launcher.serve(settings)
    except OSError as err:  # the port was taken after it was checked
        print(f"aurora: the gateway cannot listen: {err.strerror}", file=sys.stderr)
        return None


# -- aurora up -----------------------------------------------------------------------------------


class Progress:
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

    def banner(self, url: str, data_dir: Path) -> None:
        """The line that says the platform serves, and how many agents are ready yet."""
        ready = len(self.ready)
        joining = ""
        if self.pending:
            joining = f"; {'the others' if ready else 'they'} join as they start"
        print(
            f"AuroraSOC is up at {url}  (API: {url}/api/v1; agents ready: "
            f"{ready} of {len(self.agents)}{joining}; data: {data_dir})",
            flush=True,
        )

    async def remind(self, every: float = 15.0) -> None:
        """Every ``every`` seconds, the agents that have not been ready once yet."""
        while len(self.seen) < len(self.agents):
            await asyncio.sleep(every)
            waiting = [name for name in self.agents if name not in self.seen]
            if waiting:
                elapsed = time.monotonic() - self.started
                print(f"  still starting after {elapsed:.0f} s: {', '.join(waiting)}", flush=True)


def _say_admin(boot: Bootstrap) -> None:
    if boot.generated_password is not None:
        print(
            f"Created admin '{boot.username}' with generated password: {boot.generated_password}\n"
            "  (shown once; set AURORA_ADMIN_PASSWORD to choose it yourself, or reset it with "
            f"`aurora user passwd {boot.username}`)",
            flush=True,
        )
    elif boot.created:
        print(f"Created admin '{boot.username}' from AURORA_ADMIN_PASSWORD", flush=True)


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora up``: the gateway, every specialist agent and the MCP tool server on their
    configured ports, until SIGINT or SIGTERM."""
    from agents.catalog import SPECIALISTS
    from gateway.supervisor import agent_command

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
    if not await ports_free(listeners):
        return 2
    progress = Progress(agents)
    children = {name: agent_command(name) for name in agents} | {"mcp": ("mcp",)}
    async with Launcher(children, on_event=progress.on_event) as launcher:
        # The children need nothing of the database: they start at once, loading their
        # libraries while the database is migrated and the gateway loads its own. The gateway
        # serves as soon as it is up: it needs no agent to start, and a call to one that is
        # still starting waits for it within the call's deadline.
        launcher.start_children()
        _say_admin(await prepare_database(settings))
        if launcher.stopping:
            return 0
        reminder = asyncio.create_task(progress.remind())
        try:
            url = await _serve(launcher, settings)
            if url is None:
                return 2
            progress.banner(url, settings.data_dir)
            warm_later()
            await launcher.wait()
        finally:
            reminder.cancel()
    return 0


# -- one process of the platform alone -----------------------------------------------------------


async def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora gateway``: the gateway alone, on a database already migrated."""
    if not await ports_free([gateway_listener(settings)]):
        return 2
    from gateway.app import SchemaNotCurrent

    async with Launcher({}) as launcher:
        try:
            url = await _serve(launcher, settings)
        except SchemaNotCurrent as err:
            print(f"aurora: {err}", file=sys.stderr)
            return 2
        if url is None:
            return 2
        print(f"AuroraSOC gateway listening on {url}", flush=True)
        warm_later()
        await launcher.wait()
    return 0


async def cmd_agent_run(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora agent run NAME``: one specialist agent, until SIGINT or SIGTERM."""
    from agents.catalog import SPECIALISTS

    if args.name not in SPECIALISTS:
        print(
            f"aurora: no agent named {args.name!r}; known: {', '.join(SPECIALISTS)}",
            file=sys.stderr,
        )
        return 2
    if not await ports_free([agent_listener(settings, args.name, args.port)]):
        return 2
    from agents.runtime.process import run_agent

    await run_agent(args.name, settings, port=args.port, ready=_say_listening(f"agent {args.name}"))
    return 0


async def cmd_mcp(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora mcp``: the MCP tool server, until SIGINT or SIGTERM."""
    if not await ports_free([mcp_listener(settings, args.port)]):
        return 2
    from tools.mcp_server import run_mcp_server

    await run_mcp_server(settings, port=args.port, ready=_say_listening("mcp server"))
    return 0


def _say_listening(what: str) -> Callable[[str], None]:
    """What a child says once it serves: the line the supervisor waits for."""

    def ready(url: str) -> None:
        print(f"{what} listening on {url}", flush=True)
        warm_later()

    return ready


def warm_later() -> None:
    """Load, on a thread of its own, what a process imports lazily to start sooner (the
    ioc-finder grammars), so that its first call finds it loaded."""
    from tools.ioc import warm

    threading.Thread(target=warm, name="warm-up", daemon=True).start()
