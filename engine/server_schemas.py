"""Request and error types shared by the server's parts (docs/HTTP_API.md)."""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

HexColor = Annotated[str, Field(pattern=r"^#?[0-9a-fA-F]{6}$", examples=["#ff0000"])]
#: A server-side path as a client sends it: not empty, no NUL byte.
#: (The pattern is checked by resolve_under_root, whose message says what is wrong.)
ServerPath = Annotated[str, Field(min_length=1, json_schema_extra={"pattern": "^[^\\u0000]+$"})]


class ErrorBody(BaseModel):
    """Every error answer: one line that names the field / file and what to do."""

    error: str


def is_number(annotation: Any) -> bool:
    """Whether a field's type is int or float (or one of them | None)."""
    if annotation in (int, float):
        return True
    return any(a in (int, float) for a in typing.get_args(annotation))


class JsonBody(BaseModel):
    """A JSON request body: its numbers must be JSON numbers.

    Pydantic's lax mode takes ``true`` and ``"5"`` for an int, which the API description
    does not allow (and a client that sends them has a bug worth hearing about). 2.0 for
    an int stays accepted: JSON Schema counts it as an integer.
    """

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, (bool, str)) and is_number(field.annotation):
                    raise ValueError(f"{name!r} must be a JSON number, got {value!r}")
        return data


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "bad request (names the field)"),
        (401, "token missing or wrong"),
        (404, "unknown job, frame or model"),
        (413, "body, frame or job over the server's limits"),
        (422, "model file breaks the model contract"),
        (500, "internal error"),
        (501, "fine-tuning is not available on this server (says what to install)"),
        (429, "the server holds too many jobs or too much job memory now: retry later"),
        (507, "out of memory"),
    )
}
