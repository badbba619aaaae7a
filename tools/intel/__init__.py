"""Threat intelligence for the agents: a local indicator store fed by STIX, MISP and CSV
feeds, and optional reputation look-ups at VirusTotal, AbuseIPDB and AlienVault OTX.

The store is synchronous SQLite (:class:`IntelStore`); coroutines use
:class:`AsyncIntelStore`, and run the importers with ``await store.run(import_…, store.sync,
feed)``.
"""

from tools.intel.connectors import (
    OTX,
    AbuseIPDB,
    ConnectorAuthError,
    ConnectorRateLimited,
    ConnectorUnavailable,
    Reputation,
    ReputationCache,
    ReputationConnector,
    ReputationOutcome,
    Verdict,
    VirusTotal,
    build_connectors,
    check_reputation,
)
from tools.intel.csv_feed import CsvMapping, import_csv
from tools.intel.misp import MISP_TYPES, import_misp_event
from tools.intel.models import (
    ImportReport,
    Indicator,
    IndicatorType,
    IntelMatch,
    IntelRecord,
    IntelStats,
    LookupResult,
    MatchKind,
    SkippedItem,
)
from tools.intel.normalise import Normalised, normalise
from tools.intel.stix import import_stix_bundle, pattern_values
from tools.intel.store import AsyncIntelStore, IntelStore

__all__ = [
    "MISP_TYPES",
    "OTX",
    "AbuseIPDB",
    "AsyncIntelStore",
    "ConnectorAuthError",
    "ConnectorRateLimited",
    "ConnectorUnavailable",
    "CsvMapping",
    "ImportReport",
    "Indicator",
    "IndicatorType",
    "IntelMatch",
    "IntelRecord",
    "IntelStats",
    "IntelStore",
    "LookupResult",
    "MatchKind",
    "Normalised",
    "Reputation",
    "ReputationCache",
    "ReputationConnector",
    "ReputationOutcome",
    "SkippedItem",
    "Verdict",
    "VirusTotal",
    "build_connectors",
    "check_reputation",
    "import_csv",
    "import_misp_event",
    "import_stix_bundle",
    "normalise",
    "pattern_values",
]
