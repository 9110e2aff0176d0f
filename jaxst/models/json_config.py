"""A model folder's config.json read without transformers' configuration classes, where that is exact.

Importing transformers' configuration module imports torch when torch is installed (1.7-1.9 s of a
fresh process), and jaxst never uses torch. A `JsonConfig` stands in for the transformers config object
when a family builds its `EncoderSpec`: an option reads as config.json's value, else as the default
the transformers config class declares for it, read from the class's source file (parsed with `ast`,
never executed), so the installed transformers version decides, not a table of copied values.

It is exact only for a config class that is a plain list of fields: the class derives straight from
`PreTrainedConfig`, is decorated only with `strict` and `auto_docstring`, and its body holds nothing
but a docstring, fields and class attributes (no `__post_init__` or validator, which may derive or
change options on load: rope parameters, layer types); and config.json has no `auto_map` (custom
code). Anything else raises `InexactJsonConfig`, and the caller reads the folder through `AutoConfig`:

- a class that is not plain, or whose source is not where transformers keeps it;
- a config.json value whose type the class's annotation does not list (transformers' strict
  dataclass check decides what then happens);
- an option absent from config.json whose class default is not a literal (DistilBERT's
  `hidden_dim = 4 * 768`), or an option the class does not declare but `PreTrainedConfig` does.

An option that neither config.json, the class nor `PreTrainedConfig` has is an AttributeError, as it
is on the transformers object, so `getattr(config, option, default)` gives the family's default.
Options of `PreTrainedConfig` itself that the families do not read (output_attentions, dtype, ...) are
neither checked nor converted here; `EncoderSpec.transformers_config` builds the transformers object,
with transformers' checks and conversions, when it is asked for (e.g. on save).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
from pathlib import Path
from typing import Any

from jaxst.io.st_format import check_type

# Python types by the names a config class's field annotations use (`int | None`, `list[int]`, ...).
ANNOTATION_TYPES = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "None": type(None),
    "list": list,
    "dict": dict,
}
# A class default that is not a literal: reading it needs the class itself.
NOT_LITERAL = object()


class InexactJsonConfig(Exception):
    """config.json alone does not say what transformers' config object would hold (named in the message).

    Deliberately not an AttributeError: `getattr(config, option, default)` must not swallow it.
    """


@dataclasses.dataclass(frozen=True)
class ConfigClassFields:
    """The fields a transformers config class declares in its own body.

    Attributes:
        class_name: e.g. "BertConfig".
        defaults: field -> its literal default, or NOT_LITERAL.
        types: field -> the Python types its annotation lists, or None when it names another type.
        attribute_map: the class's alias -> field map (DistilBERT's hidden_size -> dim, ...).
    """

    class_name: str
    defaults: dict[str, Any]
    types: dict[str, tuple[type, ...] | None]
    attribute_map: dict[str, str]


class JsonConfig:
    """config.json's options read as the transformers config object of its model_type would hold them.

    `config.<option>` follows the class's attribute_map, then gives config.json's value, else the
    class's literal default. Attributes: `options`, config.json as read; `values`, its options by the
    class's field names (an alias such as DistilBERT's hidden_size stored as dim, as transformers does).

    Raises:
        InexactJsonConfig: on construction for a class that is not plain, a config.json with an
            `auto_map`, or a value of a type the class's annotation does not list; on reading an option
            whose value only the class itself would know (see the module docstring).
    """

    def __init__(self, options: dict[str, Any]):
        if "auto_map" in options:
            raise InexactJsonConfig("config.json has an auto_map (custom configuration code)")
        self.options = options
        self.model_type: str = options["model_type"]
        self.fields = config_class_fields(self.model_type)
        self.values: dict[str, Any] = {}
        for key, value in options.items():
            option = self.fields.attribute_map.get(key, key)
            if option in self.values:
                raise InexactJsonConfig(f"config.json gives {option!r} twice (also as its alias {key!r})")
            allowed = self.fields.types.get(option, ())
            if allowed is None:
                raise InexactJsonConfig(
                    f"{self.fields.class_name}'s annotation of {option} is not checked here"
                )
            if allowed:
                try:
                    check_type(f"config.json option {key}", value, *allowed)
                except ValueError as error:
                    raise InexactJsonConfig(str(error)) from error
            self.values[option] = value

    def __getattr__(self, name: str) -> Any:
        if name in ("options", "fields", "values"):  # not set yet: __init__ failed part-way
            raise AttributeError(name)
        option = self.fields.attribute_map.get(name, name)
        if option in self.values:
            return self.values[option]
        default = self.fields.defaults.get(option)
        if option in self.fields.defaults and default is not NOT_LITERAL:
            return default
        if option in self.fields.defaults or option in pretrained_config_attributes():
            raise InexactJsonConfig(
                f"config.json has no {option!r}, and its default is no literal of {self.fields.class_name} "
                "(it is set by code, the class's or PreTrainedConfig's)"
            )
        raise AttributeError(f"{self.fields.class_name} has no option {name!r}")


def transformers_source(relative_path: str) -> Path:
    """The path of a file of the installed transformers package, found without importing it."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise InexactJsonConfig("transformers is not installed as a package folder")
    return Path(spec.submodule_search_locations[0]) / relative_path


def parse_source(relative_path: str) -> ast.Module:
    """The syntax tree of a transformers source file; InexactJsonConfig when the file is not there."""
    path = transformers_source(relative_path)
    if not path.is_file():
        raise InexactJsonConfig(f"transformers has no {relative_path}")
    return ast.parse(path.read_text(encoding="utf-8"))


@functools.cache
def config_class_fields(model_type: str) -> ConfigClassFields:
    """The fields of the transformers config class of `model_type`, from
    `transformers/models/<module>/configuration_<module>.py` (module: model_type with "-" as "_").

    Raises:
        InexactJsonConfig: no such file or class, or a class that is not plain (module docstring).
    """
    module = model_type.replace("-", "_")
    tree = parse_source(f"models/{module}/configuration_{module}.py")
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and class_model_type(node) == model_type:
            return plain_class_fields(node)
    raise InexactJsonConfig(f"transformers has no configuration class with model_type {model_type!r}")


def class_model_type(node: ast.ClassDef) -> str | None:
    """The `model_type = "..."` a class body assigns, if any."""
    for statement in node.body:
        if (
            isinstance(statement, ast.Assign)
            and [getattr(target, "id", None) for target in statement.targets] == ["model_type"]
            and isinstance(statement.value, ast.Constant)
        ):
            return statement.value.value
    return None


def plain_class_fields(node: ast.ClassDef) -> ConfigClassFields:
    """The fields of a plain config class: derived straight from PreTrainedConfig, decorated with nothing
    but `strict` and `auto_docstring`, its body a docstring, annotated fields and class attributes.

    A class attribute (`model_type`, `attribute_map`, ...) counts as a field without a type: config.json
    may set it on the object too.
    """
    if [ast.unparse(base) for base in node.bases] != ["PreTrainedConfig"]:
        raise InexactJsonConfig(f"{node.name} does not derive straight from PreTrainedConfig")
    decorators = {ast.unparse(getattr(decorator, "func", decorator)) for decorator in node.decorator_list}
    if not decorators <= {"strict", "auto_docstring"}:
        raise InexactJsonConfig(f"{node.name} has decorators {sorted(decorators)}")
    defaults: dict[str, Any] = {}
    types: dict[str, tuple[type, ...] | None] = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
            types[name] = annotation_types(statement.annotation)
            defaults[name] = literal(statement.value) if statement.value is not None else NOT_LITERAL
        elif isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
            defaults.update({target.id: literal(statement.value) for target in statement.targets})
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            what = getattr(statement, "name", None) or ast.unparse(statement)[:60]
            raise InexactJsonConfig(
                f"{node.name} holds more than fields ({what!r}, line {statement.lineno}), which may change "
                "options on load"
            )
    attribute_map = defaults.get("attribute_map", {})
    if attribute_map is NOT_LITERAL:
        raise InexactJsonConfig(f"{node.name}'s attribute_map is not a literal")
    return ConfigClassFields(node.name, defaults, types, attribute_map)


def literal(node: ast.expr) -> Any:
    """The value of a literal expression, or NOT_LITERAL."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return NOT_LITERAL


def annotation_types(node: ast.expr) -> tuple[type, ...] | None:
    """The Python types an annotation such as `int | list[int] | None` lists; None when it names another."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = annotation_types(node.left), annotation_types(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Subscript):
        node = node.value
    name = "None" if isinstance(node, ast.Constant) and node.value is None else getattr(node, "id", None)
    return (ANNOTATION_TYPES[name],) if name in ANNOTATION_TYPES else None


@functools.cache
def pretrained_config_attributes() -> frozenset[str]:
    """Every name PreTrainedConfig's body defines or its methods assign to `self` (configuration_utils.py):
    an option a family reads that is none of these is absent from the transformers object too."""
    for node in parse_source("configuration_utils.py").body:
        if isinstance(node, ast.ClassDef) and node.name == "PreTrainedConfig":
            names = set()
            body = {id(statement) for statement in node.body}
            for statement in ast.walk(node):
                if isinstance(statement, (ast.FunctionDef, ast.ClassDef)) and statement is not node:
                    names.add(statement.name)
                in_body = id(statement) in body
                targets = (
                    statement.targets
                    if isinstance(statement, ast.Assign)
                    else [statement.target]
                    if isinstance(statement, (ast.AnnAssign, ast.AugAssign))
                    else []
                )
                for target in targets:
                    if isinstance(target, ast.Name) and in_body:
                        names.add(target.id)
                    elif isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "self":
                        names.add(target.attr)
            return frozenset(names)
    raise InexactJsonConfig("transformers' configuration_utils.py has no PreTrainedConfig class")
