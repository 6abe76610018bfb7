"""Reading a posted form: ``application/x-www-form-urlencoded`` only, at most 64 KiB, one
value per field (no multipart: the app takes no file uploads)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

__all__ = ["MAX_FORM_BYTES", "FormError", "read_form"]

MAX_FORM_BYTES = 64 * 1024


class FormError(Exception):
    """A posted body that is no form this app reads."""


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (none for an empty body); FormError for another content type,
    a body over the limit, or a field given twice."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind and request.headers.get("content-length", "0") == "0":
        return {}  # a form without fields (a button alone)
    if kind != "application/x-www-form-urlencoded":
        raise FormError(f"a form is posted as application/x-www-form-urlencoded, not {kind!r}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if name in fields:
            raise FormError(f"field {name!r} given twice")
        fields[name] = value
    return fields
