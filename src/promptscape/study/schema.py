"""Reading a config file and checking it against the schema: strict YAML (a key given twice
in one mapping is an error, where plain YAML keeps the last silently) and JSON-schema
validation with the schema's defaults filled in, every error a ConfigError that names the
key (`workflow/schemas/config.schema.yaml` documents every key). The domain model and the
checks a schema cannot express are `promptscape.study.config`'s."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from promptscape.validation import ConfigError


def check_config_files(paths) -> list[dict]:
    """Read each YAML config file strictly: a key given twice in one mapping is a
    ConfigError naming the file, the line and the key (plain YAML keeps the last silently),
    and so is a syntax error. Returns the parsed mappings."""
    return [_read_strict(Path(path)) for path in paths]


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: key {key!r} is "
                              f"given twice in one mapping (first on line {seen[key]}); YAML "
                              "would silently keep the last")
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_strict(path: Path) -> dict:
    with open(path) as handle:
        loader = _StrictLoader(handle)
        loader.name = str(path)
        try:
            return loader.get_single_data() or {}
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{line}: not valid YAML: {error.problem or error.context}"
                              + (f" ({error.context})" if error.problem and error.context
                                 else "")) from None
        finally:
            loader.dispose()


def validate_schema(config: dict, schema: dict) -> None:
    """JSON-schema validation with defaults filled in; the first error becomes a
    ConfigError naming the key, what is wrong, and the key's documented meaning."""
    import jsonschema

    _fill_defaults(config, schema, schema)
    validator = _validator_class()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        error, message = _specific(errors[0], schema)
        where = _dotted(error.absolute_path) or "config"
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        message = f"{where}: {message}"
        if hint and error.validator not in ("additionalProperties", "required", "oneOf",
                                            "anyOf"):
            message += f" ({' '.join(hint.split())})"
        raise ConfigError(message)


def _specific(error, root):
    """The error to report, and its message, for a value that fits none of a oneOf's or an
    anyOf's alternatives: the error of the alternative whose type the value has (the one
    with fewest errors where several do), which names the entry at fault; where none does,
    the types allowed. jsonschema's own message names neither. An unexpected key's message
    lists the keys allowed."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        typed = {i: subs for i, subs in branches.items()
                 if not any(sub.validator == "type" and not sub.relative_path for sub in subs)}
        if not typed:
            types = []
            for branch in error.validator_value:
                kind = _resolve(branch, root).get("type", [])
                types += [t for t in ([kind] if isinstance(kind, str) else kind)
                          if t not in types]
            return error, (f"{error.instance!r} is not of type "
                           f"{' or '.join(repr(t) for t in types)}")
        subs = min(typed.values(), key=len)
        error = min(subs, key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    allowed = error.schema.get("properties") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties" and error.validator_value is False and allowed:
        return error, f"{error.message}; allowed: {', '.join(allowed)}"
    return error, error.message


def _strict_integer(checker, instance) -> bool:
    """JSON Schema counts 8.0 as an integer; a config that says 8.0 means something else."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _validator_class():
    import jsonschema

    base = jsonschema.Draft202012Validator
    return jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _strict_integer))


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _fill_defaults(instance, schema, root) -> None:
    """Fill `default` values into `instance` in place, recursively (objects and arrays)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in instance and isinstance(sub, dict) and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in instance:
                if key not in schema.get("properties", {}):
                    _fill_defaults(instance[key], extra, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], root)
