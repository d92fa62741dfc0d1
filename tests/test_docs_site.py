"""The documentation site's sources agree with each other (no MkDocs needed): every page in
mkdocs.yml's navigation exists, every guide page and every notebook is in it, every API page
names an importable module, and every notebook is a jupytext percent file with a title. The
site itself is built with `mkdocs build --strict` in .ci/run, which also executes the
notebooks."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def nav_pages():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    return re.findall(r":\s*(\S+\.md)\s*$", nav, flags=re.M)


def test_every_nav_page_exists_or_is_a_notebook():
    generated = {f"notebooks/{nb.stem}.md" for nb in NOTEBOOKS}
    for page in nav_pages():
        assert (DOCS / page).is_file() or page in generated, page


def test_every_guide_page_and_notebook_is_in_the_nav():
    pages = set(nav_pages())
    for md in DOCS.rglob("*.md"):
        assert md.relative_to(DOCS).as_posix() in pages, md
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}.md" in pages, nb


def test_the_five_tutorials_exist():
    assert {nb.stem for nb in NOTEBOOKS} == {
        "numpy_to_rnnkit", "bag_of_words", "why_lstms", "architectures", "regularisation"}


@pytest.mark.parametrize("page", sorted((DOCS / "api").glob("*.md")), ids=lambda p: p.name)
def test_api_pages_name_importable_modules(page):
    modules = re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), flags=re.M)
    assert modules
    for name in modules:
        importlib.import_module(name)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_percent_files_with_a_title(notebook):
    text = notebook.read_text(encoding="utf-8")
    assert "formats: py:percent" in text.split("# ---", 2)[1]
    cells = re.split(r"^# %%", text, flags=re.M)[1:]
    assert cells[0].startswith(" [markdown]\n# # "), "the first cell is the markdown title"


def test_readme_links_to_the_site_and_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/index.md)" in readme
    for nb in NOTEBOOKS:
        assert f"(notebooks/{nb.name})" in readme, nb.name
