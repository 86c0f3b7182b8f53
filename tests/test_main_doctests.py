"""The doctests of the ``__main__.py`` modules, which pytest's ``--doctest-modules`` skips
(it never collects a ``__main__.py``); they run here with the project's option flags."""

import doctest
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAINS = sorted(path.relative_to(ROOT) for path in (ROOT / "phosjax").rglob("__main__.py"))


def test_main_modules_are_found() -> None:
    assert pathlib.Path("phosjax/morph/__main__.py") in MAINS
    assert pathlib.Path("phosjax/bench/view/__main__.py") in MAINS


@pytest.mark.parametrize("path", MAINS, ids=str)
def test_doctests_of_main_module_pass(path: pathlib.Path, request: pytest.FixtureRequest) -> None:
    # Imported as phosjax.x.__main__, so its `if __name__ == "__main__"` does not run main.
    module = importlib.import_module(".".join(path.with_suffix("").parts))
    names = request.config.getini("doctest_optionflags")
    flags = 0
    for name in names:  # pytest's own (NUMBER) do not apply to stdlib's runner
        flags |= doctest.OPTIONFLAGS_BY_NAME.get(name, 0)
    runner = doctest.DocTestRunner(optionflags=flags)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)  # a failure's report is printed (shown by pytest)
    assert runner.summarize(verbose=False).failed == 0
