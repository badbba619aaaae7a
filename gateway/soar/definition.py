"""The playbook language: a declarative definition (YAML or JSON), checked whole before it is
stored, and the JMESPath expressions its steps use.

A playbook names its ``inputs`` and a list of ``steps``; each step ``uses`` a step kind of
:data:`gateway.soar.steps.STEP_KINDS` ``with`` parameters, and may have an ``if`` condition, a
``foreach`` list to loop over, a ``timeout``, ``retries`` and an ``on_error`` policy::

    id: phishing-triage
    name: Phishing triage
    inputs: {alert_id: {type: string, required: true}}
    steps:
      - id: alert
        uses: alert.get
        with: {alert_id: "${{ inputs.alert_id }}"}
      - id: enrich
        uses: intel.enrich
        if: "length(steps.alert.output.entities) > `0`"
        with: {indicators: "${{ steps.alert.output.entities }}"}

Expressions are JMESPath, never Python: ``if`` and ``foreach`` are bare expressions, and a
string of ``with`` holds ``${{ expr }}`` templates. A string that is exactly one template becomes
the expression's value (any type); other strings interpolate each value as text. The context
is ``{inputs, trigger, steps: {<id>: {status, output}}, item, index, execution: {id, mode,
playbook}}``. JMESPath evaluates a filter's condition against each element, so inside
``[? ... ]`` names are the element's fields, not the context's.

Every problem is AURORA-4221 (:class:`~core.errors.PlaybookValidationFailed`) whose detail lists
``{"loc", "msg", "type"}``, ``loc`` naming the failing place (``["steps", 2, "with", "host"]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Final, Literal

import jmespath
import orjson
import yaml
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import PlaybookValidationFailed, ValidationFailed
from core.validation import json_depth, load_json
from gateway.soar.steps import STEP_KINDS

MAX_DEFINITION_BYTES: Final = 256 * 1024
"""The largest definition accepted, as text (YAML or JSON)."""
MAX_DEPTH: Final = 32
"""Deepest nesting of mappings and lists in a definition."""
MAX_STEPS: Final = 100
MAX_INPUTS: Final = 32
MAX_EXPRESSION_CHARS: Final = 2000
MAX_WITH_BYTES: Final = 64 * 1024
"""The most one step's ``with`` may hold, as JSON."""
MAX_INPUT_BYTES: Final = 64 * 1024
"""The most one input value may hold, as JSON."""
MAX_RENDERED_CHARS: Final = 1_000_000
"""The longest string interpolation may build."""
ROOTS: Final = ("inputs", "trigger", "steps", "item", "index", "execution")
"""The names an expression may start from."""
STEP_RESULT: Final = ("status", "output")
EXECUTION_FIELDS: Final = ("id", "mode", "playbook")
MEDIA_TYPES: Final = {
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "text/x-yaml": "yaml",
    "application/json": "json",
}

_TEMPLATE: Final = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_SLUG: Final = r"^[a-z0-9][a-z0-9-]{2,63}$"
_NAME: Final = r"^[a-z][a-z0-9_]{0,31}$"

Problem = dict[str, Any]
Loc = list[str | int]


def _problem(loc: Loc, msg: str, kind: str) -> Problem:
    return {"loc": loc, "msg": msg, "type": kind}


def _refused(problems: list[Problem]) -> PlaybookValidationFailed:
    return PlaybookValidationFailed(problems)


# --- expressions -------------------------------------------------------------------------------


class _Functions(functions.Functions):
    """JMESPath's built-in functions, and ``unique(array)``: the array without repeats, in
    order (the accounts a search found, each once)."""

    @functions.signature({"types": ["array"]})
    def _func_unique(self, values: list[Any]) -> list[Any]:
        seen: dict[bytes, Any] = {}
        for value in values:
            seen.setdefault(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), value)
        return list(seen.values())


_OPTIONS: Final = jmespath.Options(custom_functions=_Functions())


@lru_cache(maxsize=4096)
def _compile(expression: str) -> ParsedResult:
    """The compiled expression (once per distinct text); AURORA-4221 when it does not parse."""
    text = expression.strip()
    if not text:
        raise _refused([_problem([], "an expression is empty", "expression_empty")])
    if len(text) > MAX_EXPRESSION_CHARS:
        raise _refused(
            [_problem([], f"longer than {MAX_EXPRESSION_CHARS} characters", "expression_length")]
        )
    try:
        return jmespath.compile(text)
    except (JMESPathError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _refused(
            [_problem([], f"not a JMESPath expression: {reason}", "expression_invalid")]
        ) from err


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of the JMESPath ``expression`` over ``context``; AURORA-4221 (loc
    ``["expression"]``) when it does not compile or fails on this data (a function given the
    wrong type)."""
    compiled = _compile(expression)
    try:
        return compiled.search(dict(context), options=_OPTIONS)
    except JMESPathError as err:
        raise _refused(
            [_problem(["expression"], f"{expression.strip()}: {err}", "expression_failed")]
        ) from err


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _exact(text: str) -> str | None:
    """The expression of a string that is exactly one ``${{ expr }}`` template, else None."""
    stripped = text.strip()
    found = _TEMPLATE.fullmatch(stripped)
    if found is None or "${{" in found[1]:
        return None
    return found[1]


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with its templates evaluated over ``context``: a string that is exactly
    ``${{ expr }}`` becomes the expression's value, other strings interpolate each value as
    text (null as nothing, lists and objects as JSON); lists and mappings are rendered item by
    item; anything else is returned as it is."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        exact = _exact(value)
        if exact is not None:
            return evaluate(exact, context)
        text = _TEMPLATE.sub(lambda found: _as_text(evaluate(found[1], context)), value)
        if len(text) > MAX_RENDERED_CHARS:
            raise _refused(
                [
                    _problem(
                        ["expression"],
                        f"the rendered text is longer than {MAX_RENDERED_CHARS} characters",
                        "rendered_length",
                    )
                ]
            )
        return text
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


def is_true(value: Any) -> bool:
    """JMESPath's truthiness: false, null, an empty string, list or object are false; anything
    else (0 included) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def expressions(value: Any) -> list[str]:
    """The expressions of every ``${{ }}`` template in ``value`` (strings, lists, mappings)."""
    if isinstance(value, str):
        return [found[1] for found in _TEMPLATE.finditer(value)]
    if isinstance(value, list):
        return [e for item in value for e in expressions(item)]
    if isinstance(value, dict):
        return [e for item in value.values() for e in expressions(item)]
    return []


def _bare(expression: str) -> str:
    """An ``if`` or ``foreach`` may be written bare or as one ``${{ }}`` template."""
    return _exact(expression) or expression


# --- the definition ----------------------------------------------------------------------------

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


def _is_type(value: Any, kind: InputType) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)


class InputSpec(BaseModel):
    """One input of a playbook: its JSON type, whether it must be given, its default."""

    model_config = ConfigDict(extra="forbid")

    type: InputType = "string"
    required: bool = False
    default: Any = None
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        if self.default is not None:
            if not _is_type(self.default, self.type):
                raise ValueError(f"the default is not of type {self.type}")
            if len(orjson.dumps(self.default)) > MAX_INPUT_BYTES:
                raise ValueError(f"the default is larger than {MAX_INPUT_BYTES} bytes as JSON")
        return self


Expression = Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)]


class StepDef(BaseModel):
    """One step: what it ``uses``, ``with`` which parameters, under which condition."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=_NAME)
    name: str | None = Field(default=None, max_length=200)
    uses: str = Field(min_length=1, max_length=64)
    if_: Expression | None = Field(default=None, alias="if")
    foreach: Expression | None = None
    """An expression giving the list the step runs once per item of (``item``, ``index``)."""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: int = Field(default=30, ge=1, le=3600)
    """Seconds one run of the step may take (an approval waits by its own ``timeout_seconds``)."""
    retries: int = Field(default=0, ge=0, le=5)
    """Further attempts after a transient error (never after a side effect of unknown outcome)."""
    on_error: Literal["stop", "continue"] = "stop"

    @model_validator(mode="after")
    def _bounded_with(self) -> StepDef:
        if json_depth(self.with_, stop_at=MAX_DEPTH) > MAX_DEPTH:
            raise ValueError(f"'with' is nested more than {MAX_DEPTH} levels deep")
        if len(orjson.dumps(self.with_)) > MAX_WITH_BYTES:
            raise ValueError(f"'with' is larger than {MAX_WITH_BYTES} bytes as JSON")
        return self


class PlaybookDefinition(BaseModel):
    """A playbook as written: its id (a slug), name, inputs and steps (1 to 100)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    inputs: dict[Annotated[str, Field(pattern=_NAME)], InputSpec] = Field(
        default_factory=dict, max_length=MAX_INPUTS
    )
    steps: list[StepDef] = Field(min_length=1, max_length=MAX_STEPS)

    def step(self, step_id: str) -> StepDef:
        """The step ``step_id``; KeyError when there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def document(self) -> dict[str, Any]:
        """The definition as JSON-able data, spelt as written (``if``, ``with``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- loading -----------------------------------------------------------------------------------


class _LimitedLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader (libyaml when present) that refuses aliases, nesting past
    :data:`MAX_DEPTH` and duplicate keys before any Python object is built, and keeps
    timestamps as the text written (a definition is JSON)."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_nodes(node)
        return super().construct_document(node)


def _check_nodes(root: yaml.Node) -> None:
    seen: set[int] = set()
    pending: list[tuple[yaml.Node, int]] = [(root, 0)]
    while pending:
        node, depth = pending.pop()
        if id(node) in seen:
            raise _refused(
                [_problem(["body"], "YAML aliases are not allowed in a playbook", "yaml_alias")]
            )
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            duplicate = None
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        duplicate = key.value
                        break
                    keys.add(key.value)
            if duplicate is not None:
                line = node.start_mark.line + 1
                raise _refused(
                    [
                        _problem(
                            ["body"],
                            f"the key {duplicate!r} appears twice in the mapping at line {line}",
                            "yaml_duplicate_key",
                        )
                    ]
                )
            children = [part for pair in node.value for part in pair]
        else:
            continue
        if depth + 1 > MAX_DEPTH:
            raise _refused(
                [_problem(["body"], f"nested more than {MAX_DEPTH} levels deep", "json_depth")]
            )
        pending.extend((child, depth + 1) for child in children)


_LimitedLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _load_yaml(text: str) -> Any:
    try:
        documents = list(yaml.load_all(text, _LimitedLoader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _refused(
            [_problem(["body"], f"not valid YAML: {err.problem}{where}", "yaml_invalid")]
        ) from err
    except (yaml.YAMLError, RecursionError) as err:
        raise _refused([_problem(["body"], "not valid YAML", "yaml_invalid")]) from err
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        raise _refused([_problem(["body"], "a playbook is one YAML document", "yaml_documents")])
    return documents[0]


def _data(text: str | bytes | Mapping[str, Any], media: str) -> Any:
    if isinstance(text, Mapping):
        data = dict(text)
        if json_depth(data, stop_at=MAX_DEPTH) > MAX_DEPTH:
            raise _refused(
                [_problem(["body"], f"nested more than {MAX_DEPTH} levels deep", "json_depth")]
            )
        return data
    kind = MEDIA_TYPES.get(media.split(";", 1)[0].strip().lower())
    if kind is None:
        known = ", ".join(sorted(MEDIA_TYPES))
        raise _refused([_problem(["body"], f"a playbook is one of {known}", "media_type")])
    if len(text) > MAX_DEFINITION_BYTES:
        raise _refused(
            [_problem(["body"], f"larger than {MAX_DEFINITION_BYTES} bytes", "definition_size")]
        )
    if kind == "json":
        try:
            return load_json(text, max_depth=MAX_DEPTH)
        except ValidationFailed as err:
            raise _refused(list(err.detail)) from err
    try:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as err:
        raise _refused([_problem(["body"], "not UTF-8 text", "encoding")]) from err
    return _load_yaml(source)


# --- checking ----------------------------------------------------------------------------------


def _chains(node: Mapping[str, Any], at_root: bool) -> Iterator[list[str]]:
    """The field paths an expression reads from the context (``["steps", "enrich",
    "output"]``), walking the compiled AST: only what is evaluated against the context itself,
    not against an element of a projection or filter."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        if at_root:
            yield [node["value"]]
    elif kind == "subexpression":
        if at_root:
            yield _chain(node)
        yield from _chains(children[0], at_root)
        for child in children[1:]:
            yield from _chains(child, False)
    elif kind in {
        "index_expression",
        "pipe",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
    }:
        yield from _chains(children[0], at_root)
        for child in children[1:]:
            yield from _chains(child, False)
    elif kind in {
        "comparator",
        "and_expression",
        "or_expression",
        "not_expression",
        "function_expression",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
    }:
        for child in children:
            yield from _chains(child, at_root)
    elif kind == "expref":
        for child in children:
            yield from _chains(child, False)


def _chain(node: Mapping[str, Any]) -> list[str]:
    """The leading field names of a path expression (``a.b[0].c`` gives ``a, b``)."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    if kind in {"index_expression", "projection", "filter_projection", "value_projection"}:
        return _chain(node["children"][0])
    if kind == "subexpression":
        names: list[str] = []
        for position, child in enumerate(node["children"]):
            if child["type"] == "field":
                names.append(child["value"])
                continue
            if position == 0:
                names = _chain(child)
                if child["type"] == "subexpression":
                    continue
            break
        return names
    return []


def _negated_path(node: Mapping[str, Any]) -> bool:
    """Whether the AST holds ``!a.b``: JMESPath binds ``!`` tighter than ``.``, so it reads
    ``b`` of the boolean ``!a``: never what was meant."""
    pending = [node]
    while pending:
        current = pending.pop()
        children = current.get("children", [])
        if (
            current["type"] in {"subexpression", "index_expression"}
            and children
            and children[0]["type"] == "not_expression"
        ):
            return True
        pending.extend(child for child in children if isinstance(child, Mapping))
    return False


class _Scope:
    """What a step's expressions may reference: the inputs, the steps before it, and ``item``
    and ``index`` in a step that loops."""

    def __init__(self, inputs: set[str], earlier: list[str], looping: bool) -> None:
        self.inputs, self.earlier, self.looping = inputs, earlier, looping

    def problems(self, expression: str, loc: Loc) -> list[Problem]:
        try:
            compiled = _compile(expression)
        except PlaybookValidationFailed as err:
            return [{**problem, "loc": loc} for problem in err.detail]
        found: list[Problem] = []
        if _negated_path(compiled.parsed):
            negation = "'!a.b' reads .b of !a (always null); write '!(a.b)'"
            found.append(_problem(loc, f"{expression.strip()}: {negation}", "expression_negation"))
        for chain in _chains(compiled.parsed, True):
            message = self._check(chain)
            if message is not None:
                problem = _problem(loc, f"{expression.strip()}: {message}", "reference_invalid")
                if problem not in found:
                    found.append(problem)
        return found

    def _check(self, chain: list[str]) -> str | None:
        if not chain:
            return None
        root = chain[0]
        if root not in ROOTS:
            return f"'{root}' is not in the context (one of {', '.join(ROOTS)})"
        if root in {"item", "index"} and not self.looping:
            return f"'{root}' is only defined in a step with 'foreach'"
        if len(chain) < 2:
            return None
        name = chain[1]
        if root == "inputs" and name not in self.inputs:
            declared = ", ".join(sorted(self.inputs)) or "none"
            return f"the input '{name}' is not declared (declared: {declared})"
        if root == "execution" and name not in EXECUTION_FIELDS:
            return f"an execution has {', '.join(EXECUTION_FIELDS)}, not '{name}'"
        if root == "steps":
            if name not in self.earlier:
                return f"the step '{name}' is not defined before this one"
            if len(chain) > 2 and chain[2] not in STEP_RESULT:
                return f"a step's result has {' and '.join(STEP_RESULT)}, not '{chain[2]}'"
        return None


def _template_problems(value: Any, loc: Loc, scope: _Scope) -> list[Problem]:
    if isinstance(value, str):
        return [p for e in expressions(value) for p in scope.problems(e, loc)]
    if isinstance(value, list):
        return [
            p for i, item in enumerate(value) for p in _template_problems(item, [*loc, i], scope)
        ]
    if isinstance(value, dict):
        return [
            p for key, item in value.items() for p in _template_problems(item, [*loc, key], scope)
        ]
    return []


def _params_problems(step: StepDef, loc: Loc) -> list[Problem]:
    """What the step kind's parameters model finds wrong in the literal values of ``with``;
    fields given as expressions are left to the run."""
    model = STEP_KINDS[step.uses].params
    literal = {k: v for k, v in step.with_.items() if not expressions(v)}
    deferred = set(step.with_) - set(literal)
    try:
        model.model_validate(literal)
    except ValidationError as err:
        found: list[Problem] = []
        for error in err.errors(include_url=False, include_input=False, include_context=False):
            where = list(error["loc"])
            if deferred and (not where or where[0] in deferred):
                continue  # the run gives these a value (or a model-wide check needs it)
            found.append(_problem([*loc, "with", *where], error["msg"], error["type"]))
        return found
    return []


def _semantic_problems(definition: PlaybookDefinition) -> list[Problem]:
    problems: list[Problem] = []
    inputs = set(definition.inputs)
    earlier: list[str] = []
    for index, step in enumerate(definition.steps):
        loc: Loc = ["steps", index]
        if step.id in earlier:
            problems.append(
                _problem([*loc, "id"], f"the step id '{step.id}' is used twice", "step_duplicate")
            )
        if step.uses not in STEP_KINDS:
            known = ", ".join(sorted(STEP_KINDS))
            problems.append(
                _problem(
                    [*loc, "uses"],
                    f"unknown step kind '{step.uses}'; known: {known}",
                    "step_kind_unknown",
                )
            )
        outer = _Scope(inputs, earlier, looping=False)
        if step.foreach is not None:
            problems += outer.problems(_bare(step.foreach), [*loc, "foreach"])
        scope = _Scope(inputs, earlier, looping=step.foreach is not None)
        if step.if_ is not None:
            # A condition is evaluated once, before any loop: no item yet.
            problems += outer.problems(_bare(step.if_), [*loc, "if"])
        problems += _template_problems(step.with_, [*loc, "with"], scope)
        if step.uses in STEP_KINDS:
            problems += _params_problems(step, loc)
        if step.id not in earlier:
            earlier.append(step.id)
    return problems


def parse_playbook(
    text: str | bytes | Mapping[str, Any], *, media: str = "application/yaml"
) -> PlaybookDefinition:
    """The checked definition of ``text`` (YAML or JSON by ``media``, or data already parsed).

    AURORA-4221 lists every problem found, each naming where: not YAML/JSON or past the limits
    (size, nesting, aliases, duplicate keys); a field of the wrong shape; a step id used twice;
    an unknown ``uses`` (listing the known kinds); an expression that does not compile or that
    references a step not defined earlier, an undeclared input or a name outside the context;
    a literal ``with`` value the step kind's parameters refuse.
    """
    data = _data(text, media)
    if not isinstance(data, dict):
        raise _refused([_problem(["body"], "a playbook is a mapping", "definition_type")])
    try:
        definition = PlaybookDefinition.model_validate(data)
    except ValidationError as err:
        raise _refused(
            [
                _problem(list(error["loc"]), error["msg"], error["type"])
                for error in err.errors(
                    include_url=False, include_input=False, include_context=False
                )
            ]
        ) from err
    except RecursionError as err:
        raise _refused([_problem(["body"], "nested too deeply", "json_depth")]) from err
    problems = _semantic_problems(definition)
    if problems:
        raise _refused(problems)
    return definition


def check_inputs(definition: PlaybookDefinition, given: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of an execution: ``given`` checked against the definition's (types, required
    ones present, none unknown) with defaults filled in. AURORA-4220 naming each bad input
    (``["body", "inputs", name]``)."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in definition.inputs:
            declared = ", ".join(sorted(definition.inputs)) or "none"
            problems.append(
                _problem(
                    ["body", "inputs", name],
                    f"the playbook has no input '{name}' (declared: {declared})",
                    "extra_forbidden",
                )
            )
    for name, spec in definition.inputs.items():
        loc: Loc = ["body", "inputs", name]
        value = given.get(name)
        if value is None:
            if spec.default is not None:
                values[name] = spec.default
            elif spec.required:
                problems.append(_problem(loc, "this input is required", "missing"))
            else:
                values[name] = None
            continue
        if not _is_type(value, spec.type):
            problems.append(_problem(loc, f"expected {spec.type}", f"{spec.type}_type"))
            continue
        if json_depth(value, stop_at=MAX_DEPTH) > MAX_DEPTH:
            problems.append(_problem(loc, f"nested more than {MAX_DEPTH} levels", "json_depth"))
            continue
        if len(orjson.dumps(value)) > MAX_INPUT_BYTES:
            problems.append(
                _problem(loc, f"larger than {MAX_INPUT_BYTES} bytes as JSON", "input_size")
            )
            continue
        values[name] = value
    if problems:
        raise ValidationFailed(problems)
    return values


BUILTIN_PACKAGE: Final = "gateway.soar"
BUILTIN_FOLDER: Final = "playbooks"


def load_builtin() -> list[PlaybookDefinition]:
    """The playbooks shipped with the platform (``gateway/soar/playbooks/*.yaml``), checked
    like any other, in the order of their ids."""
    folder = resources.files(BUILTIN_PACKAGE).joinpath(BUILTIN_FOLDER)
    found = [
        parse_playbook(entry.read_bytes())
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    ]
    return sorted(found, key=lambda definition: definition.id)
