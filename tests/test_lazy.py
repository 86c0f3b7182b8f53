import sys
import types

import pytest

from phosjax._lazy import lazy_exports


def test_an_attribute_error_while_importing_a_lazy_name_is_an_import_error_naming_it(
    tmp_path, monkeypatch
):
    """``from package import name`` said only "cannot import name", and ``hasattr`` gave
    False, where the module defining it used an API its dependency lacks."""
    (tmp_path / "lazy_broken.py").write_text("import math\nmath.no_such_api\nthing = 1\n")
    monkeypatch.syspath_prepend(tmp_path)
    demo = types.ModuleType("lazy_demo")
    demo.__getattr__, demo.__dir__ = lazy_exports(vars(demo), {"thing": "lazy_broken"})
    monkeypatch.setitem(sys.modules, "lazy_demo", demo)
    expected = "importing 'lazy_broken' failed: module 'math' has no attribute 'no_such_api'"
    with pytest.raises(ImportError, match=f"^{expected}$"):
        exec("from lazy_demo import thing")
    with pytest.raises(ImportError, match=f"^{expected}$"):
        hasattr(demo, "thing")
