"""MkDocs hook: execute the tutorial notebooks and add them to the site.

Each ``notebooks/*.py`` (jupytext percent format) is run top to bottom in a fresh Python kernel
(the interpreter running MkDocs, so the rnnkit it imports) in an empty temporary directory, and
becomes two pages of the site: ``notebooks/<name>.md`` (cells, outputs and figures) and the
executed ``notebooks/<name>.ipynb`` to download. A cell that raises, or a notebook that runs
longer than ``LIMIT_S``, fails the build: the notebooks are checked by every ``mkdocs build``.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbconvert import MarkdownExporter

LIMIT_S = 180          # per notebook; on 2 idle cores each takes well under 60 s
log = logging.getLogger("mkdocs.hooks.notebooks")


def run_notebook(source: Path, limit_s: float = LIMIT_S):
    """Execute one jupytext notebook; returns (executed notebook, seconds). Raises
    RuntimeError naming the notebook when a cell fails or the time limit is exceeded."""
    nb = jupytext.read(source)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:
        client = NotebookClient(nb, timeout=limit_s, kernel_name="python3",
                                resources={"metadata": {"path": cwd}})
        try:
            client.execute()
        except CellTimeoutError as exc:
            raise RuntimeError(f"{source.name}: a cell ran longer than {limit_s} s") from exc
        except CellExecutionError as exc:
            raise RuntimeError(f"{source.name} failed:\n{exc}") from exc
    seconds = time.perf_counter() - start
    if seconds > limit_s:
        raise RuntimeError(f"{source.name} took {seconds:.0f} s, over its limit of {limit_s} s")
    return nb, seconds


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    sources = sorted((root / "notebooks").glob("*.py"))
    if not sources:
        raise PluginError("no notebooks found in notebooks/")
    exporter = MarkdownExporter()
    for source in sources:
        name = source.stem
        try:
            nb, seconds = run_notebook(source)
        except RuntimeError as exc:
            raise PluginError(str(exc)) from exc
        log.info("notebook %s executed in %.1f s", name, seconds)
        body, resources = exporter.from_notebook_node(
            nb, resources={"output_files_dir": f"{name}_files", "unique_key": name})
        header = (f"*Executed when this site was built. Source: `notebooks/{name}.py` in the "
                  f"repository (jupytext percent format); executed notebook: "
                  f"[{name}.ipynb]({name}.ipynb).*\n\n")
        title_end = body.find("\n", body.find("# ")) + 1     # keep the H1 first
        page = body[:title_end] + "\n" + header + body[title_end:]
        files.append(File.generated(config, f"notebooks/{name}.md", content=page))
        files.append(File.generated(config, f"notebooks/{name}.ipynb",
                                    content=nbformat.writes(nb)))
        for path, data in resources.get("outputs", {}).items():
            files.append(File.generated(config, f"notebooks/{path}", content=data))
    return files
