"""The AURORA error catalogue: one typed exception per code of ``spec/API.md``.

Services, tools and agents raise these; only the gateway middleware and the agent dispatcher
turn them into wire envelopes. The first three digits of a code mirror its HTTP status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AuroraError(Exception):
    """Base of every platform error: a stable code, an HTTP status and a safe message.

    ``detail`` is shown to the caller: never put secrets, tracebacks or internal paths in it.
    """

    code: ClassVar[str] = "AURORA-5000"
    status: ClassVar[int] = 500
    message: str = "Internal server error"

    def __init__(
        self,
        detail: Any = None,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail
        self.headers = dict(headers or {})
        if message is not None:
            self.message = message
        super().__init__(f"{self.code}: {self.message}")


class BadRequest(AuroraError):
    """Not in the spec's table: a request malformed below the API (its request line, headers or
    framing), answered before any route sees it."""

    code, status, message = "AURORA-4000", 400, "Malformed request"


class AuthenticationRequired(AuroraError):
    code, status, message = "AURORA-4010", 401, "Authentication required"


class TokenExpired(AuroraError):
    code, status, message = "AURORA-4011", 401, "Token expired"


class InvalidCredentials(AuroraError):
    code, status, message = "AURORA-4012", 401, "Invalid credentials"


class PermissionDenied(AuroraError):
    code, status, message = "AURORA-4030", 403, "Insufficient permissions"


class GuardrailDenied(AuroraError):
    code, status, message = "AURORA-4031", 403, "Action denied by guardrail policy"


class NotFound(AuroraError):
    code, status, message = "AURORA-4040", 404, "Resource not found"


class CaseNotFound(NotFound):
    code, status, message = "AURORA-4041", 404, "Case not found"


class AlertNotFound(NotFound):
    code, status, message = "AURORA-4042", 404, "Alert not found"


class AgentNotFound(NotFound):
    code, status, message = "AURORA-4043", 404, "Agent not found"


class MethodNotAllowed(AuroraError):
    """Not in the spec's table: the taxonomy's code for HTTP 405."""

    code, status, message = "AURORA-4050", 405, "Method not allowed"


class ApprovalTimeout(AuroraError):
    code, status, message = "AURORA-4080", 408, "Human approval timed out"


class RequestTimeout(AuroraError):
    """Not in the spec's table: a client too slow to send its request (HTTP 408). AURORA-4080
    is the spec's human-approval timeout, so this is the next code of the 408 family."""

    code, status, message = "AURORA-4081", 408, "Request not received in time"


class Conflict(AuroraError):
    code, status, message = "AURORA-4090", 409, "Resource conflict"


class ChangedConcurrently(Conflict):
    """A versioned row another writer changed first: nothing was written, and reading the row
    again and reapplying a change that does not depend on what it read (adding tags) succeeds."""


class DuplicateAlert(Conflict):
    code, status, message = "AURORA-4091", 409, "Duplicate alert"


class PayloadTooLarge(AuroraError):
    """Not in the spec's table: the taxonomy's code for HTTP 413."""

    code, status, message = "AURORA-4130", 413, "Request body too large"


class ValidationFailed(AuroraError):
    code, status, message = "AURORA-4220", 422, "Validation error"


class PlaybookValidationFailed(ValidationFailed):
    code, status, message = "AURORA-4221", 422, "Playbook validation failed"


class SigmaValidationFailed(ValidationFailed):
    code, status, message = "AURORA-4222", 422, "Sigma rule validation failed"


class RateLimited(AuroraError):
    code, status, message = "AURORA-4290", 429, "Rate limit exceeded"

    def __init__(self, detail: Any = None, *, retry_after: int = 1) -> None:
        """``retry_after``: seconds until a retry may succeed (1 where the limiter did not say,
        as when an agent's AURORA-4290 is rebuilt from its code)."""
        self.retry_after = max(1, int(retry_after))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})


class InternalError(AuroraError):
    code, status, message = "AURORA-5000", 500, "Internal server error"


class ServiceUnavailable(AuroraError):
    code, status, message = "AURORA-5030", 503, "Service temporarily unavailable"


class LLMUnavailable(ServiceUnavailable):
    code, status, message = "AURORA-5031", 503, "LLM inference service unavailable"


class ClickHouseUnavailable(ServiceUnavailable):
    code, status, message = "AURORA-5032", 503, "ClickHouse service unavailable"


def _catalogue() -> dict[str, type[AuroraError]]:
    found: dict[str, type[AuroraError]] = {}
    pending: list[type[AuroraError]] = [AuroraError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not AuroraError and cls.__module__ == __name__:
            found[cls.code] = cls
    return dict(sorted(found.items()))


CATALOGUE: dict[str, type[AuroraError]] = _catalogue()
"""Every AURORA code, mapped to its exception class."""


def error_for_code(code: str) -> type[AuroraError]:
    """The exception class of an AURORA code; AURORA-5000 for an unknown one."""
    return CATALOGUE.get(code, InternalError)
