"""Enterprise ATT&CK for the agents: technique lookups, tactics, search and text mapping."""

from tools.attack.document import (
    DocumentTechnique,
    DocumentWeights,
    SentenceVote,
    summarise_techniques,
)
from tools.attack.kb import SHIPPED_INDEX, AttackKB, Tactic, Technique, TechniqueLookup
from tools.attack.mapping import MappingWeights, TechniqueMatch
from tools.attack.sentences import TextSpan, split_sentences

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
    "TextSpan",
    "split_sentences",
    "summarise_techniques",
]
