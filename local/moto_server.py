"""The embedded AWS's cost per request: moto's server works out the same things again on every
request.

Measured on this stack's mix of DynamoDB and SQS requests (`python -m bench.qualify` at 50 webhooks a
second saturates 2 cores, and moto took about half of it), per request moto:

- lists its own package directory (a `stat` per service, about 190) to find the backend;
- reads a class's methods through `inspect.getmembers` to find the action;
- builds the service's botocore model again, twice;
- works out, for every member of every shape in the response, which names the value might be found
  under (five alias rules each): for a DynamoDB item, every attribute value's ten type members, most
  absent. This was half of moto's CPU.

A DynamoDB attribute value without binary data is already in its wire form, so it is written as it
is rather than rebuilt member by member.

None of these depends on the request: the modules and classes are fixed once moto is loaded, a
service's model is read from a file that does not change, and a member's candidate names depend only
on the member's shape and the type of the object it is read from. Here each is worked out once and
kept. What every request answers is unchanged.
"""

from __future__ import annotations

import functools
from typing import Any


def apply() -> None:
    """Patch moto in this process (the embedded AWS's); idempotent."""
    from moto import backends
    from moto.core import responses, serialize, utils

    if getattr(serialize.AttributePicker, "keys_remembered", False):
        return

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)

    responses.method_names_from_class = functools.cache(utils.method_names_from_class)
    responses.get_service_model = functools.cache(utils.get_service_model)

    for picker in (serialize.AttributePicker, serialize.XFormedAttributePicker):
        picker.get_possible_keys = _remembering(picker.__dict__["get_possible_keys"])  # type: ignore[method-assign]
    serialize.AttributePicker.keys_remembered = True  # type: ignore[attr-defined]

    structure = serialize.BaseJSONSerializer._serialize_type_structure

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and _plain_attribute_value(value):
            # Already in its wire form: the member-by-member walk would rebuild the same dict.
            self._default_serialize(serialized, value, shape, key)
            return
        structure(self, serialized, value, shape, key)

    serialize.BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]


def _remembering(original: Any) -> Any:
    remembered: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def get_possible_keys(self: Any, context: Any) -> Any:
        obj, shape = context.obj, context.shape
        if hasattr(obj, "Meta") or shape is None:
            # An object may carry its own aliases: nothing to remember.
            return original(self, context)
        parent = getattr(shape, "parent", None)
        key = (
            type(self),
            type(obj),
            context.key,
            getattr(context.service_model, "service_name", None),
            shape.name,
            shape.type_name,
            shape.serialization.get("name"),
            getattr(parent, "name", None),
            getattr(parent, "type_name", None),
        )
        keys = remembered.get(key)
        if keys is None:
            keys = remembered[key] = tuple(original(self, context))
        return keys

    return get_possible_keys


_SCALAR_TYPES = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _plain_attribute_value(value: Any) -> bool:
    """Whether a DynamoDB attribute value is exactly what JSON carries: one type key, and no binary
    (B and BS are base64-encoded on the way out, so those take moto's own path)."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar = _SCALAR_TYPES.get(kind)
    if scalar is not None:
        return type(inner) is scalar
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "L":
        return type(inner) is list and all(_plain_attribute_value(v) for v in inner)
    if kind == "M":
        return type(inner) is dict and all(
            type(k) is str and _plain_attribute_value(v) for k, v in inner.items()
        )
    return False
