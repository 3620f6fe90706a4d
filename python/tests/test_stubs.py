"""The .pyi stubs name exactly what the extension offers, with the same parameter names."""

import ast
import inspect
import pathlib
import re

import ems
import ems._ems as ext

STUB = pathlib.Path(__file__).resolve().parents[1] / "ems" / "_ems.pyi"


def stub_tree():
    return ast.parse(STUB.read_text())


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_names_match_the_module():
    tree = stub_tree()
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            stubbed.add(node.target.id)
    assert public(dir(ext)) == stubbed - {"Tokens", "Extra"}
    assert set(ems.__all__) == public(dir(ext))


def test_stub_methods_and_parameters_match():
    for node in stub_tree().body:
        if not isinstance(node, ast.ClassDef) or node.name.endswith("Error"):
            continue
        cls = getattr(ext, node.name)
        methods = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
        assert public(methods) == public(dir(cls)), node.name
        for name, f in methods.items():
            if name.startswith("__") and name != "__init__":
                continue
            if any(getattr(d, "id", "") == "property" for d in f.decorator_list):
                assert isinstance(getattr(cls, name), property), (node.name, name)
                continue
            stub_params = [a.arg for a in f.args.args + f.args.kwonlyargs if a.arg != "self"]
            doc = inspect.getdoc(getattr(cls, name)) or ""
            # pybind11 signatures read "name(self: ems._ems.X, a: T, b: T = ...) -> R".
            sig = doc.splitlines()[0]
            real = [p for p in re.findall(r"(\w+): ", sig) if p != "self"]
            assert real == stub_params, (node.name, name, sig)


def test_every_status_code_has_its_exception():
    names = {
        1: "CancelledError", 2: "UnknownError", 3: "InvalidArgumentError",
        4: "DeadlineExceededError", 5: "NotFoundError", 6: "AlreadyExistsError",
        7: "PermissionDeniedError", 8: "ResourceExhaustedError", 9: "FailedPreconditionError",
        10: "AbortedError", 11: "OutOfRangeError", 12: "UnimplementedError", 13: "InternalError",
        14: "UnavailableError", 15: "DataLossError", 16: "UnauthenticatedError",
    }
    builtins = {3: ValueError, 4: TimeoutError, 5: LookupError, 7: PermissionError,
                11: ValueError, 12: NotImplementedError, 14: ConnectionError,
                16: PermissionError}
    for code, name in names.items():
        cls = getattr(ems, name)
        assert issubclass(cls, ems.EmsError) and cls.code == code, name
        assert cls.code_name == re.sub(r"(?<!^)(?=[A-Z])", "_", name[:-5]).upper()
        if code in builtins:
            assert issubclass(cls, builtins[code]), name
        e = cls("message naming the thing")
        assert str(e) == "message naming the thing"
