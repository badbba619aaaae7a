"""Versioned prompt files and their loader (a change adds v2 beside v1)."""

from prompts.loader import (
    LATEST,
    Prompt,
    PromptFileInvalid,
    PromptLibrary,
    PromptNotFound,
    load_prompt,
    prompt_names,
)

__all__ = [
    "LATEST",
    "Prompt",
    "PromptFileInvalid",
    "PromptLibrary",
    "PromptNotFound",
    "load_prompt",
    "prompt_names",
]
