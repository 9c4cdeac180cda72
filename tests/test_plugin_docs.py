"""docs/plugins.md agrees with the code: every hook of gateway/hookspecs.py is documented with its exact
signature (and nothing else is documented as a hook), and every name of `gateway.__all__` is mentioned.

A hook's documented signature is a fenced ```python block holding an `@hookspec` function, e.g.

    @hookspec
    def register_backend_types(register: Callable[[type[Backend]], None]) -> None: ...

Names, parameters (name, kind, default, annotation) and the return annotation are compared with
`inspect.signature` of the hookspec; annotations are compared as normalised source text.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pluggy
import pytest

import gateway
from gateway import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
HOOKSPEC_DECORATOR = "hookspec"


def spec_functions() -> dict[str, object]:
    """Every hook specification in gateway/hookspecs.py, by name (as pluggy itself finds them)."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: obj for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, marker)
    }


def _norm(annotation: str) -> str:
    """One spelling of an annotation's source text (spacing and quotes do not matter)."""
    return ast.unparse(ast.parse(annotation, mode="eval"))


def _annotation(value: object) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    return _norm(value if isinstance(value, str) else inspect.formatannotation(value))


def code_signature(fn: object) -> dict[str, object]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return {
        "parameters": [
            (p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default),
             _annotation(p.annotation))
            for p in sig.parameters.values()
        ],
        "returns": _annotation(sig.return_annotation),
    }


def _doc_parameters(args: ast.arguments) -> list[tuple[str, str, str | None, str | None]]:
    out: list[tuple[str, str, str | None, str | None]] = []
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append(_doc_param(arg, kind, default))
    if args.vararg:
        out.append(_doc_param(args.vararg, "VAR_POSITIONAL", None))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(_doc_param(arg, "KEYWORD_ONLY", default))
    if args.kwarg:
        out.append(_doc_param(args.kwarg, "VAR_KEYWORD", None))
    return out


def _doc_param(arg: ast.arg, kind: str, default: ast.expr | None) -> tuple[str, str, str | None, str | None]:
    default_repr = None if default is None else repr(ast.literal_eval(default))
    annotation = None if arg.annotation is None else _norm(ast.unparse(arg.annotation))
    return (arg.arg, kind, default_repr, annotation)


def documented_hooks(text: str) -> tuple[dict[str, dict[str, object]], list[str]]:
    """The `@hookspec` functions of the doc's python blocks, and problems reading them."""
    hooks: dict[str, dict[str, object]] = {}
    problems: list[str] = []
    for block in PYTHON_BLOCK.findall(text):
        if f"@{HOOKSPEC_DECORATOR}" not in block:
            continue
        try:
            tree = ast.parse(block)
        except SyntaxError as exc:
            problems.append(f"a hook signature block is not valid Python ({exc}):\n{block}")
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not any(isinstance(d, ast.Name) and d.id == HOOKSPEC_DECORATOR for d in node.decorator_list):
                continue
            if node.name in hooks:
                problems.append(f"hook {node.name!r} is documented twice")
            hooks[node.name] = {
                "parameters": _doc_parameters(node.args),
                "returns": None if node.returns is None else _norm(ast.unparse(node.returns)),
            }
    return hooks, problems


def hook_problems(text: str) -> list[str]:
    """Every disagreement between the doc's hook signatures and gateway/hookspecs.py."""
    documented, problems = documented_hooks(text)
    specs = spec_functions()
    for name in sorted(set(specs) - set(documented)):
        problems.append(f"hook {name!r} of gateway/hookspecs.py has no ```python @hookspec block in {DOC.name}")
    for name in sorted(set(documented) - set(specs)):
        problems.append(f"{DOC.name} documents a hook {name!r} that gateway/hookspecs.py does not have")
    for name in sorted(set(specs) & set(documented)):
        code, doc = code_signature(specs[name]), documented[name]
        if code["parameters"] != doc["parameters"]:
            problems.append(f"hook {name!r}: parameters are {code['parameters']} in the code, "
                            f"{doc['parameters']} in {DOC.name}")
        if code["returns"] != doc["returns"]:
            problems.append(f"hook {name!r}: returns {code['returns']} in the code, {doc['returns']} in {DOC.name}")
    return problems


def api_problems(text: str) -> list[str]:
    return [f"gateway.{name} (in __all__) is not mentioned as `{name}` in {DOC.name}"
            for name in gateway.__all__ if f"`{name}`" not in text]


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_hookspecs_are_found() -> None:
    # Guards the check itself: an empty set of hooks would make every comparison pass.
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    assert set(spec_functions()) == {name for name in vars(pm.hook) if not name.startswith("_")}
    assert spec_functions()


def test_every_hook_is_documented_with_its_signature(doc: str) -> None:
    assert hook_problems(doc) == []


def test_every_hook_has_its_own_section(doc: str) -> None:
    missing = [name for name in spec_functions() if f"### `{name}`" not in doc]
    assert missing == [], f"no '### `name`' heading in {DOC.name} for {missing}"


def test_every_public_name_is_mentioned(doc: str) -> None:
    assert api_problems(doc) == []


# The check must be able to fail: each edit below makes the doc disagree with the code.

def _signature_line(doc: str, hook: str) -> str:
    """The documented `def` line of a hook: the one right after its `@hookspec`."""
    match = re.search(rf"^@{HOOKSPEC_DECORATOR}\n(def {hook}\(.*)$", doc, re.MULTILINE)
    assert match, f"no signature line for {hook}"
    return match.group(1)


def test_a_renamed_parameter_is_caught(doc: str) -> None:
    line = _signature_line(doc, "register_backend_types")
    problems = hook_problems(doc.replace(line, line.replace("(register:", "(add:")))
    assert any("register_backend_types" in p and "parameters" in p for p in problems)


def test_a_changed_annotation_is_caught(doc: str) -> None:
    line = _signature_line(doc, "register_middleware")
    problems = hook_problems(doc.replace(line, line.replace("Callable[[Middleware], None]", "Callable[..., None]")))
    assert any("register_middleware" in p and "parameters" in p for p in problems)


def test_a_changed_return_annotation_is_caught(doc: str) -> None:
    line = _signature_line(doc, "lifespan")
    problems = hook_problems(doc.replace(line, line.replace("-> AbstractAsyncContextManager[None] | None", "-> None")))
    assert any("lifespan" in p and "returns" in p for p in problems)


def test_an_extra_parameter_is_caught(doc: str) -> None:
    line = _signature_line(doc, "lifespan")
    widened = line.replace("(gateway: Gateway)", "(gateway: Gateway, extra: int = 1)")
    problems = hook_problems(doc.replace(line, widened))
    assert any("lifespan" in p and "parameters" in p for p in problems)


def test_an_undocumented_hook_is_caught(doc: str) -> None:
    line = _signature_line(doc, "register_patterns")
    problems = hook_problems(doc.replace(f"@hookspec\n{line}", line))
    assert any("'register_patterns'" in p and "no ```python" in p for p in problems)


def test_a_documented_hook_that_does_not_exist_is_caught(doc: str) -> None:
    extra = "\n```python\n@hookspec\ndef register_naming(register: Callable[[str], None]) -> None: ...\n```\n"
    problems = hook_problems(doc + extra)
    assert any("'register_naming'" in p and "does not have" in p for p in problems)


def test_an_unmentioned_public_name_is_caught(doc: str) -> None:
    assert "`ToolFilter`" in doc
    assert any("ToolFilter" in p for p in api_problems(doc.replace("`ToolFilter`", "ToolFilter")))


def test_first_party_plugins_use_only_the_public_gateway_api() -> None:
    """A plugin's package imports `gateway` itself, never a submodule (its tests may use `gateway.testing`)."""
    offenders = []
    for path in sorted(ROOT.glob("plugins/*/manifold_*/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("gateway.")]
    assert not offenders, offenders
    assert len(list(ROOT.glob("plugins/*/manifold_*/plugin.py"))) >= 6
