"""Pins the public API: a name added or removed must be a decision, not an accident."""

import ast
import importlib
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import phosjax as px
import phosjax.bench
import phosjax.morph

EXPECTED = sorted(
    [
        "AUX_LOSS",
        "BLURB",
        "CONSTANTS",
        "INJECTIONS",
        "INTERMEDIATES",
        "KNOBS",
        "PATH_WEIGHTS",
        "PERTURBATIONS",
        "Knob",
        "Range",
        "SelectorError",
        "aux_loss",
        "aux_total",
        "blurb",
        "Blurb",
        "current_path_weight",
        "grad_of",
        "inject",
        "knob",
        "knobs",
        "note",
        "path_weight",
        "perturbations",
        "probe",
        "regularize",
        "scan_axes",
        "select",
        "set_knobs",
        "tag",
        "tweak",
        "core",
        "layers",
        "models",
        "ModelConfig",
        "build_model",
        "register_model",
        "registered_models",
        "bench",
        "data",
        "morph",
        "train",
        "Cell",
        "GridResult",
        "HParams",
        "Regularizer",
        "train_grid",
    ]
)


def test_all_is_pinned():
    assert sorted(px.__all__) == EXPECTED


@pytest.mark.parametrize("package", [px, phosjax.bench, phosjax.morph], ids=lambda p: p.__name__)
def test_every_public_name_exists_and_is_documented(package):
    for name in package.__all__:
        obj = getattr(package, name)
        if callable(obj):
            assert obj.__doc__, f"{package.__name__}.{name} has no docstring"


PUBLIC_PACKAGES = (
    "phosjax",
    "phosjax.bench",
    "phosjax.bench.view",
    "phosjax.core",
    "phosjax.data",
    "phosjax.layers",
    "phosjax.models",
    "phosjax.models.graph",
    "phosjax.morph",
    "phosjax.train",
)

NO_EXAMPLE: dict[str, str] = {
    # "package.name": "why its docstring cannot hold a short runnable example",
}
"""Public callables excused from having a ``>>>`` example; each needs a reason. Keep it
short: an example that would be slow can usually show a quick case (a check, an error)."""


def test_the_public_packages_are_every_package_without_a_private_name():
    """The tests below check the packages listed: a package left off is checked by none
    (the names test had its own list, which left off ``models.graph`` and ``bench.view``)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    found = [
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "phosjax").rglob("__init__.py")
    ]
    public = {name for name in found if not any(part.startswith("_") for part in name.split("."))}
    assert public == set(PUBLIC_PACKAGES), (
        f"not in PUBLIC_PACKAGES: {sorted(public - set(PUBLIC_PACKAGES))}; "
        f"no such package: {sorted(set(PUBLIC_PACKAGES) - public)}"
    )


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_public_callable_has_an_example(name):
    """The project's rule, "short docstrings with an example": every public function and
    class has a ``>>>`` example in its own docstring (run by the doctests). Constants are
    not callable and need none."""
    package = importlib.import_module(name)
    missing = [
        f"{name}.{attr}"
        for attr in package.__all__
        if callable(obj := getattr(package, attr))
        and not isinstance(obj, type(pytest))  # a subpackage
        and ">>>" not in (obj.__doc__ or "")
        and f"{name}.{attr}" not in NO_EXAMPLE
    ]
    assert not missing, f"no '>>>' example in the docstring of: {', '.join(missing)}"


SKIPPED_EXAMPLES: dict[str, str] = {
    "phosjax/bench/export.py::export_mlflow": "it trains a bench: docs/results.md runs it",
    "phosjax/bench/_speed.py::measure": "it times every method of every size it is given",
}
"""Docstrings whose example is ``+SKIP`` (the doctests do not run it), each with why."""


def test_only_the_allowlisted_examples_are_skipped():
    """A skipped example is never run, so nothing shows when it goes wrong: each
    function or class of phosjax whose docstring skips one is listed with why."""
    root = pathlib.Path(__file__).resolve().parent.parent
    skipped = [
        f"{path.relative_to(root)}::{node.name}"
        for path in (root / "phosjax").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and "+SKIP" in (ast.get_docstring(node) or "")
    ]
    assert sorted(skipped) == sorted(SKIPPED_EXAMPLES)


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_public_method_and_property_of_a_public_class_has_a_docstring(name):
    """A method or property a public class defines (not one it inherits) says what it
    gives: `help` and an IDE show nothing else of it."""
    package = importlib.import_module(name)
    missing = []
    for attr in package.__all__:
        cls = getattr(package, attr)
        if not isinstance(cls, type):
            continue
        for member, value in vars(cls).items():
            function = value.fget if isinstance(value, property) else value
            function = getattr(function, "__func__", function)  # classmethod, staticmethod
            if not member.startswith("_") and callable(function) and not function.__doc__:
                missing.append(f"{name}.{attr}.{member}")
    assert not missing, f"no docstring: {', '.join(missing)}"


def _wrapped_function(value):
    """The function under a property, a cached_property, a static or class method, an
    ``lru_cache`` or Flax's wrapper of a module's property (``value`` where none is)."""
    for attribute in ("fget", "func", "__func__", "__wrapped__", "wrapped"):
        if hasattr(value, attribute):
            return _wrapped_function(getattr(value, attribute))
    return value


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_public_function_and_method_annotates_its_arguments_and_return(name):
    """A user's type checker reads a missing annotation as ``Any``: what a public function
    or a public class's own method takes and returns is written out (a method a library
    adds, as flax.struct's ``replace``, is that library's)."""
    package = importlib.import_module(name)
    functions = {}
    for attr in package.__all__:
        obj = getattr(package, attr)
        if inspect.isfunction(function := _wrapped_function(obj)):
            functions[f"{name}.{attr}"] = function
        elif isinstance(obj, type):
            for member, value in vars(obj).items():
                function = _wrapped_function(value)
                if (
                    not member.startswith("_")
                    and inspect.isfunction(function)
                    and function.__module__.startswith("phosjax")
                ):
                    functions[f"{name}.{attr}.{member}"] = function
    missing = [
        qualified
        for qualified, function in functions.items()
        if (signature := inspect.signature(function)).return_annotation is signature.empty
        or any(
            parameter.annotation is parameter.empty and parameter.name not in ("self", "cls")
            for parameter in signature.parameters.values()
        )
    ]
    assert not missing, f"not annotated: {', '.join(missing)}"


PACKAGES_WITHOUT_EXAMPLE = {
    "phosjax.bench.view": "a web server: its docstring gives the command that starts it",
}


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_public_name_is_named_in_the_docs_or_its_package_docstring(name):
    """A reader finds a public name in the README, docs/*.md or ``help(package)``; one
    that phosjax re-exports may be named in its subpackage's docstring instead."""
    root = pathlib.Path(__file__).resolve().parent.parent
    paths = [root / "README.md", *root.glob("docs/*.md")]
    docs = [path.read_text(encoding="utf-8") for path in paths]
    package = importlib.import_module(name)
    missing = []
    for attr in package.__all__:
        home = px._EXPORTS.get(attr, name) if package is px else name
        texts = [*docs, package.__doc__ or "", importlib.import_module(home).__doc__ or ""]
        if not any(re.search(rf"\b{attr}\b", text) for text in texts):
            missing.append(attr)
    assert not missing, f"{name}: named in no doc nor docstring: {', '.join(missing)}"


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_package_docstring_shows_its_use_in_an_example(name):
    """``help(phosjax.train)`` (core, models, graph, morph) gave one line and no example."""
    doc = importlib.import_module(name).__doc__ or ""
    assert (">>>" in doc) != (name in PACKAGES_WITHOUT_EXAMPLE), name


def test_the_allowlist_of_callables_without_examples_is_current():
    for qualified, reason in NO_EXAMPLE.items():
        name, _, attr = qualified.rpartition(".")
        package = importlib.import_module(name)
        assert attr in package.__all__ and reason, qualified
        assert ">>>" not in (getattr(package, attr).__doc__ or ""), f"{qualified} has one now"


def test_importing_phosjax_loads_no_jax_and_each_name_loads_on_first_use():
    code = (
        "import sys, phosjax as px\n"
        "assert not {'jax', 'flax', 'phosjax.core', 'phosjax.train'} & set(sys.modules)\n"
        "from phosjax import tag, HParams\n"
        "assert tag is sys.modules['phosjax.core'].tag and 'tag' in vars(px)\n"
        "assert HParams is sys.modules['phosjax.train'].HParams\n"
        "assert px.bench is sys.modules['phosjax.bench'] and 'tag' in dir(px)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "statement",
    [
        "import phosjax.bench.view.__main__",
        "from phosjax.bench import leaderboard, BenchError",  # reading results
    ],
)
def test_the_viewer_and_the_leaderboard_load_no_jax(statement):
    code = (
        f"import sys; {statement}\n"
        "loaded = {'jax', 'flax', 'optax', 'tensorflow_datasets'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_bench_planning_and_running_load_no_viewer():
    code = (
        "import sys, phosjax.bench._directory, phosjax.bench._runner, phosjax.bench._profile\n"
        "loaded = [name for name in sys.modules if name.startswith('phosjax.bench.view')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _type_checking_imports(package):
    """``(module, name)`` of each ``from module import name as name`` under TYPE_CHECKING."""
    tree = ast.parse(pathlib.Path(package.__file__).read_text(encoding="utf-8"))
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]
    assert ast.unparse(block.test) == "TYPE_CHECKING"
    assert all(isinstance(node, ast.ImportFrom) for node in block.body)
    assert all(alias.asname == alias.name for node in block.body for alias in node.names)
    return sorted((node.module, alias.name) for node in block.body for alias in node.names)


@pytest.mark.parametrize("package", [px, phosjax.bench, phosjax.morph], ids=lambda p: p.__name__)
def test_the_type_checking_imports_name_exactly_the_lazy_exports(package):
    subpackages = getattr(package, "_SUBPACKAGES", ())
    exports = [(module, name) for name, module in package._EXPORTS.items()]
    assert _type_checking_imports(package) == sorted(
        exports + [(package.__name__, name) for name in subpackages]
    )
    assert sorted(package.__all__) == sorted([*package._EXPORTS, *subpackages])
    for module, name in exports:
        assert getattr(package, name) is getattr(importlib.import_module(module), name)
    for name in subpackages:
        assert getattr(package, name) is importlib.import_module(f"{package.__name__}.{name}")


def test_no_submodule_hides_an_exported_name():
    """Importing a submodule sets it on its package: an exported name it shares would then
    be the module (``phosjax.bench.add_models`` is a command, the function `add_models_to`).
    Checked in a fresh process, where no submodule has been imported yet."""
    code = """
import importlib, pkgutil, phosjax
names = ["phosjax", *(f"phosjax.{n}" for n in phosjax._SUBPACKAGES), "phosjax.models.graph"]
for name in names:
    package = importlib.import_module(name)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name in package.__all__:
            exported = getattr(package, module.name)
            importlib.import_module(f"{name}.{module.name}")
            assert getattr(package, module.name) is exported, f"{name}.{module.name}"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian_grid'"):
        _ = px.trian_grid
