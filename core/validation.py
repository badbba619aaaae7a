"""Pydantic validation as the platform reports it: AURORA-4220 with field-level detail."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import ValidationFailed


def validation_detail(err: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """Field-level errors without the rejected values (they may be secrets)."""
    return [
        {"loc": [prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in err.errors(include_url=False, include_input=False, include_context=False)
    ]


def validate[M: BaseModel](model: type[M], data: Any, *, where: str = "body") -> M:
    """Validate ``data`` into ``model``; failures are AURORA-4220 with field-level detail."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(validation_detail(err, where)) from err
