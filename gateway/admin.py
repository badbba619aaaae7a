"""The ``aurora`` commands that manage the platform's data without running it: the schema
(``aurora db``), users (``aurora user``), tokens (``aurora token``, ``aurora agent token``), the
agents' addresses (``aurora agent list``) and evidence (``aurora evidence``).

Each works on the configured database and data directory directly, as the gateway would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.launcher import open_database

if TYPE_CHECKING:
    from core.settings import Settings


async def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from core.db.migrate import current_revision, upgrade
    from core.settings import ensure_data_dir

    ensure_data_dir(settings)
    async with open_database(settings) as database:
        await upgrade(database, args.revision)
        print(f"database at revision {await current_revision(database)}")
    return 0


async def cmd_db_current(settings: Settings, args: argparse.Namespace) -> int:
    from core.db.migrate import current_revision, head_revision, is_current

    async with open_database(settings) as database:
        current = await current_revision(database)
        head = head_revision(settings.effective_database_url)
        state = "current" if await is_current(database) else "behind: run `aurora db upgrade`"
        print(f"database at revision {current or '(none)'}, newest {head} ({state})")
    return 0


# -- users and tokens ----------------------------------------------------------------------------


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

    role, hasher = Role(args.role), PasswordHasher.from_settings(settings)
    password: str | None = None
    if role not in {Role.SERVICE_AGENT, Role.SERVICE_RESPONDER} or args.password_stdin:
        password = _read_password(args)
    async with open_database(settings) as database:
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
                hasher=hasher,
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

    async with open_database(settings) as database:
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

    async with open_database(settings) as database, database.session() as db:
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

    async with open_database(settings) as database, database.session() as db:
        await users.delete_user(db=db, actor_id="", username=args.username)
    print(f"deleted '{args.username}'")
    return 0


async def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from core.security.tokens import TokenService
    from gateway.users import service as users

    async with open_database(settings) as database, database.session() as db:
        user = await users.get_user_by_username(db=db, username=args.username)
    issued = TokenService.from_settings(settings).issue(
        user.id, ttl_seconds=args.ttl, claims={"username": user.username}
    )
    print(issued.token)
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


# -- evidence ------------------------------------------------------------------------------------


async def _change_evidence[T](
    settings: Settings,
    args: argparse.Namespace,
    change: Callable[..., Awaitable[T]],
    **more: object,
) -> T:
    """``change`` (an evidence service function) on the evidence ``args`` names, by its actor
    for its reason, with the content and the ledger's keys where the gateway keeps them."""
    from core.blobs import BlobStore
    from core.ledger import Keyring

    blobs = BlobStore.from_settings(settings)
    async with open_database(settings) as database, database.session() as db:
        return await change(
            db=db,
            blobs=blobs,
            keys=Keyring.from_settings(settings),
            evidence_id=args.evidence_id,
            actor=args.actor,
            reason=args.reason,
            **more,
        )


async def cmd_evidence_purge(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.cases.evidence.service import purge_evidence

    item = await _change_evidence(settings, args, purge_evidence)
    print(f"purged {item.id} (sha256 {item.sha256}); the purge is in its ledger")
    return 0


async def cmd_evidence_hand_over(settings: Settings, args: argparse.Namespace) -> int:
    """``aurora evidence export`` (a copy into a new file) and ``transfer`` (custody passed to
    someone), each recorded in the evidence's custody chain."""
    from gateway.cases.evidence.service import hand_over

    target = Path(args.to)
    if args.action == "export" and target.exists():  # noqa: ASYNC240 - a one-shot command
        print(f"aurora: {target} exists; not overwriting evidence copies", file=sys.stderr)
        return 2
    details = {"to": str(target)} if args.action == "export" else {"to": args.to}
    item, content = await _change_evidence(
        settings, args, hand_over, action=args.action, details=details
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
