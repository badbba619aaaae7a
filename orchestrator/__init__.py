"""The LangGraph orchestrator that routes investigations to specialist agents.

Checkpoints are deserialised with LangGraph's strict msgpack allow-list: a checkpoint row can
never name a Python callable to run on load. LangGraph reads ``LANGGRAPH_STRICT_MSGPACK`` when
it is first imported, so it is set here, before any module of this package imports it (the
checkpoint savers are also given a strict serializer explicitly, whatever imported LangGraph
first).
"""

import os

os.environ["LANGGRAPH_STRICT_MSGPACK"] = "true"
