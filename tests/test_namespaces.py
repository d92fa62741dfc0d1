"""Public modules export what they document: ``__all__`` lists the public API, and no helper
leaks in as a public name (``rnnkit.os``, ``dropin.check_ids``): names imported from rnnkit's
private modules and other modules stay private (underscored) or are reached through them."""
import importlib
import types

import pytest

PUBLIC_MODULES = ["rnnkit", "rnnkit.functional", "rnnkit.dropin", "rnnkit.embedding", "rnnkit.reference", "rnnkit.text", "rnnkit.nn", "rnnkit.interop", "rnnkit.interop.pytorch",
                  "rnnkit.interop.onnx",
                  "rnnkit.models", "rnnkit.train"]


def _leaks(module):
    bad = []
    for name, value in vars(module).items():
        if name.startswith("_") or name == "annotations" or name in module.__all__:
            continue
        if isinstance(value, types.ModuleType):
            # submodules belong; numpy as np is the one conventional import; rnnkit.os would not
            if not value.__name__.startswith(module.__name__ + ".") and name != "np":
                bad.append(name)
        elif "._" in (getattr(value, "__module__", None) or "") and not isinstance(value, type):
            bad.append(name)  # a function from a private rnnkit module (rnnkit._checks...)
    return bad


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_exports_no_helpers(name):
    module = importlib.import_module(name)
    assert _leaks(module) == []
    for exported in module.__all__:
        assert hasattr(module, exported), exported
