"""Enterprise ATT&CK for the agents: technique lookups, tactics, search and text mapping."""

from tools.attack.document import DocumentTechnique, DocumentWeights, SentenceVote
from tools.attack.kb import SHIPPED_INDEX, AttackKB, Tactic, Technique, TechniqueLookup
from tools.attack.mapping import MappingWeights, TechniqueMatch

__all__ = [
    "SHIPPED_INDEX",
    "AttackKB",
    "DocumentTechnique",
    "DocumentWeights",
    "MappingWeights",
    "SentenceVote",
    "Tactic",
    "Technique",
    "TechniqueLookup",
    "TechniqueMatch",
]
