"""Evidence hand-over and purge from the command line, recorded in the ledger."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from core.blobs import BlobStore
from core.db import create_database
from core.ledger import Keyring
from gateway.cases.evidence import service
from gateway.cases.models import Case
from tests.e2e.aurora import database_url, run

CONTENT = b"exfiltrated.zip contents\n" * 100


async def _seed(data_dir: Path) -> str:
    database = create_database(database_url({"AURORA_DATA_DIR": str(data_dir)}))
    blobs = BlobStore(data_dir / "evidence", max_bytes=10_000_000)
    try:
        async with database.session() as db:
            db.add(
                Case(
                    id="CASE-2026-00001",
                    title="Exfiltration",
                    status="open",
                    severity="high",
                    tlp="TLP:RED",
                    pap="PAP:RED",
                    tags=[],
                    created_by="ana",
                )
            )
            await db.commit()

        async with database.session() as db:
            with blobs.stage() as content:
                content.write(CONTENT)
                item = await service.add_evidence(
                    db=db,
                    blobs=blobs,
                    keys=Keyring(data_dir / "ledger-keys"),
                    case_id="CASE-2026-00001",
                    actor="ana",
                    name="x.zip",
                    content_type="application/zip",
                    description=None,
                    reason="seized",
                    content=content,
                )
            return item.id
    finally:
        await database.dispose()


async def _actions(
    data_dir: Path, evidence_id: str, delete_case: bool = False
) -> list[tuple[str, str | None]]:
    database = create_database(database_url({"AURORA_DATA_DIR": str(data_dir)}))
    try:
        async with database.session() as db:
            if delete_case:
                await db.execute(
                    update(Case).values(deleted_at=datetime.now(UTC), deleted_by="ana")
                )
                await db.commit()
                return []
            item = await service.get_evidence(
                db=db, case_id="CASE-2026-00001", evidence_id=evidence_id
            )
            entries = await service.ledger_entries(db=db, evidence_id=evidence_id)
            assert service.verify(item, entries, Keyring(data_dir / "ledger-keys")).valid
            return [(e.action, e.key_id) for e in entries]
    finally:
        await database.dispose()


def hand_over(
    env: dict[str, str], action: str, evidence_id: str, to: str, reason: str
) -> subprocess.CompletedProcess[str]:
    return run(
        env, "evidence", action, evidence_id, "--to", to, "--actor", "bob", "--reason", reason
    )


def test_export_transfer_and_purge(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "db", "upgrade").returncode == 0
    data_dir = Path(env["AURORA_DATA_DIR"])
    evidence_id = asyncio.run(_seed(data_dir))
    out = tmp_path / "copy.zip"
    exported = hand_over(env, "export", evidence_id, str(out), "forensic lab")
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes() == CONTENT
    again = hand_over(env, "export", evidence_id, str(out), "again")
    assert again.returncode == 2  # never overwrites a copy
    assert f"{out} exists" in again.stderr
    moved = hand_over(env, "transfer", evidence_id, "DFIR lab", "analysis")
    assert moved.returncode == 0, moved.stderr
    held = run(env, "evidence", "purge", evidence_id, "--reason", "done")
    assert held.returncode == 1
    assert "cannot be purged" in held.stderr
    asyncio.run(_actions(data_dir, evidence_id, delete_case=True))
    rotated = run(env, "evidence", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    keys = Keyring(data_dir / "ledger-keys")
    first, second = keys.ids()
    assert f"ledger key {second} seals new entries" in rotated.stdout
    purged = run(env, "evidence", "purge", evidence_id, "--reason", "retention ended")
    assert purged.returncode == 0, purged.stderr
    assert asyncio.run(_actions(data_dir, evidence_id)) == [
        ("create", first),
        ("export", first),
        ("transfer", first),
        ("purge", second),  # the rotated key seals new entries; the older ones still verify
    ]
    assert not any(p.is_file() for p in (data_dir / "evidence").rglob("*"))
