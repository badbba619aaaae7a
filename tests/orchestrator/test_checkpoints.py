"""The checkpoint serializer: the investigation state's own types come back out whatever
imported LangGraph first; anything else a checkpoint row names does not."""

from __future__ import annotations

import subprocess
import sys

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from agents.catalog import Subject
from orchestrator.checkpoints import state_types, strict_serializer
from orchestrator.state import Failure, StepError


def test_the_state_types_are_allowed() -> None:
    allowed = state_types()
    for kind in (Subject, Failure, StepError):
        assert (kind.__module__, kind.__name__) in allowed
    serde = strict_serializer()
    subject = Subject(title="t", text="powershell -enc ...")
    assert serde.loads_typed(serde.dumps_typed(subject)) == subject


class Intruder(BaseModel):
    """A class a checkpoint row could name that the state never holds."""

    command: str


def test_a_type_outside_the_state_is_not_rebuilt() -> None:
    written = JsonPlusSerializer(allowed_msgpack_modules=True).dumps_typed(Intruder(command="x"))
    assert not isinstance(strict_serializer().loads_typed(written), Intruder)


def test_resume_works_when_langgraph_was_imported_before_the_orchestrator() -> None:
    """LangGraph builds its own allow-list only when ``LANGGRAPH_STRICT_MSGPACK`` was set before
    its first import; the platform's does not depend on that order."""
    code = (
        "import langgraph.graph\n"
        "from agents.catalog import Subject\n"
        "from orchestrator.checkpoints import strict_serializer\n"
        "s = strict_serializer(); v = Subject(title='x')\n"
        "assert s.loads_typed(s.dumps_typed(v)) == v\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
