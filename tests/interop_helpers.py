"""What the converter tests (torch, Keras, ONNX) share: the docs example of a framework's section
of docs/persistence.md, and the ImportError a converter gives when its framework is missing."""
import os
import re
import subprocess
import sys

PERSISTENCE_DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "docs", "persistence.md")


def run_docs_example(marker):
    """Runs the one ```python block of docs/persistence.md that contains ``marker`` (the
    section's own function, e.g. "from_torch"), as a reader would paste it."""
    with open(PERSISTENCE_DOCS, encoding="utf-8") as f:
        (example,) = [block for block in re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
                      if marker in block]
    exec(compile(example, PERSISTENCE_DOCS, "exec"), {})


def import_error_without(module, call):
    """The ImportError message of rnnkit.interop's ``call`` (e.g. "to_onnx(nn.GRU(2, 3))") in a
    process where ``module`` cannot be imported."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "import rnnkit.interop as interop, rnnkit.nn as nn\n"
            "try:\n"
            f"    interop.{call}\n"
            "except ImportError as error:\n"
            "    print(error)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout
