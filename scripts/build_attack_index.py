"""Build the compact ATT&CK index the agents load from an official STIX 2.1 bundle.

    python scripts/build_attack_index.py enterprise-attack.json.gz \
        -o tools/data/attack_index.json.gz

The bundle is MITRE's (github.com/mitre-attack/attack-stix-data or mitre/cti); the output is
reproducible byte for byte from the same input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import ValidationFailed
from tools.attack.index import BundleError, build_index, read_json, write_index


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Build the compact ATT&CK index.")
    parser.add_argument("bundle", type=Path, help="STIX 2.1 bundle, .json or .json.gz")
    parser.add_argument("-o", "--output", type=Path, required=True, help="index to write")
    args = parser.parse_args(argv)
    try:
        document, digest = read_json(args.bundle)
        index = build_index(document, sha256=digest)
    except (ValidationFailed, BundleError) as err:
        detail = err.detail if isinstance(err, ValidationFailed) else err
        print(f"error: {detail}", file=sys.stderr)
        return 1
    write_index(index, args.output)
    techniques = index["techniques"]
    active = sum(1 for t in techniques if not t["revoked"] and not t["deprecated"])
    print(
        f"{args.output}: {len(techniques)} techniques ({active} active, "
        f"{sum(t['revoked'] for t in techniques)} revoked, "
        f"{sum(t['deprecated'] for t in techniques)} deprecated), "
        f"{len(index['tactics'])} tactics"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
