"""Request body schemas for the OpenAPI document, self-contained.

Routes that read their body themselves (ingest validates raw bytes for speed) describe
it with ``openapi_extra``. Pydantic's schema of a model keeps its nested models under
``$defs`` and points at them with ``#/$defs/...``, which OpenAPI resolves against the
whole document, where there is no ``$defs``: the references would dangle. Here they
are written out in place instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["body_schema"]

_PREFIX = "#/$defs/"


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with every ``#/$defs/...`` reference written out in place.

    Raises:
        ValueError: The model refers to itself (such a schema cannot be written out).
    """
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_PREFIX):
            name = ref.removeprefix(_PREFIX)
            if name in seen:
                raise ValueError(f"{model.__name__} refers to itself through {name}")
            rest = {k: inline(v, seen) for k, v in node.items() if k != "$ref"}
            return inline(definitions[name], (*seen, name)) | rest
        return {k: inline(v, seen) for k, v in node.items()}

    result: dict[str, Any] = inline(schema, ())
    return result
