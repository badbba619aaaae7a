"""SOAR: playbooks, their durable executions and automation rules (``/soar/*``, ``/playbooks``)."""
