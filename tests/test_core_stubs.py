"""The type stubs python/rnnkit/_core.pyi describe the compiled module exactly: the same
public names, and for every function the same parameters in the same order with the same
defaults as the signature pybind11 writes into the function's docstring."""
import ast
import re
from pathlib import Path

import pytest

from rnnkit import _core

STUB = Path(_core.__file__).with_name("_core.pyi")


def _stub_tree():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _public(names):
    return sorted(n for n in names if not n.startswith("_"))


def _stub_functions():
    return {node.name: node for node in _stub_tree().body if isinstance(node, ast.FunctionDef)}


def _core_signature(fn):
    """[(name, default source or None)] from pybind11's first docstring line
    'name(a: T, b: T = 1) -> R'; annotations may contain commas inside brackets."""
    line = fn.__doc__.splitlines()[0]
    inner = line[line.index("(") + 1:line.rindex(") ->")]
    params, depth, current = [], 0, ""
    for ch in inner:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            params.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        params.append(current)
    out = []
    for p in params:
        name = re.match(r"\s*(\w+)", p).group(1)
        default = p.split("=", 1)[1].strip() if "=" in p else None
        out.append((name, default))
    return out


def test_stub_file_exists_next_to_the_compiled_module():
    assert STUB.is_file()


def test_stub_lists_every_public_name_of_the_module():
    stub_names = {node.name for node in _stub_tree().body
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert _public(stub_names) == _public(dir(_core))


def test_stub_all_matches_its_definitions():
    tree = _stub_tree()
    declared = next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.AnnAssign) and node.target.id == "__all__")
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert sorted(declared) == sorted(defined)


@pytest.mark.parametrize("name", sorted(_stub_functions()))
def test_stub_function_parameters_match_the_module(name):
    node = _stub_functions()[name]
    args = node.args.args
    defaults = [None] * (len(args) - len(node.args.defaults)) + [
        ast.unparse(d) for d in node.args.defaults]
    stub = [(a.arg, d) for a, d in zip(args, defaults)]
    assert stub == _core_signature(getattr(_core, name))


def test_stub_handle_properties_match_the_class():
    cls = next(node for node in _stub_tree().body
               if isinstance(node, ast.ClassDef) and node.name == "ForwardHandle")
    props = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)
             and any(isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list)}
    real = {n for n, v in vars(_core.ForwardHandle).items() if isinstance(v, property)}
    assert props == real
