"""README.md and docs/*.md: the README stays short, links resolve, commands in the README name existing files.

No network, no imports of the project: the checks read the markdown and look at the file tree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 200
MARKDOWN_FILES = [README, *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)
_SCRIPT = re.compile(r"scripts/[\w./-]+")
_PYTHON_MODULE = re.compile(r"(?<![\w.-])python3?\s+-m\s+([\w.]+)")
_PYTHON_FILE = re.compile(r"(?<![\w.-])python3?\s+([\w./-]+\.py)\b")


def fenced_blocks(text: str) -> list[str]:
    """The contents of every fenced code block (``` or ~~~)."""
    return [m.group(2) for m in _FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text with fenced code blocks and inline code spans blanked out (links and headings are read from this)."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = re.sub(r"\\[\[\]]", "  ", text)  # escaped brackets \[ \] are literal text, never a link
    return _INLINE_CODE.sub(" ", text)


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation (except hyphens and spaces) removed, spaces -> hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    heading = heading.strip().lower()
    heading = re.sub(r"[^\w\- ]", "", heading)
    return heading.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown text; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for m in _HEADING.finditer(_FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)):
        slug = slugify(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(md_path: Path, text: str | None = None) -> list[str]:
    """Relative links of a markdown file whose target file, or whose #anchor in a target .md, does not exist."""
    if text is None:
        text = md_path.read_text(encoding="utf-8")
    problems = []
    for target in _LINK.findall(prose(text)):
        if re.match(r"(?i)(https?:|mailto:)", target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md_path.parent / path_part).resolve() if path_part else md_path
        if not dest.exists():
            problems.append(f"{md_path.name}: link target {target!r} does not exist")
            continue
        if anchor and dest.suffix == ".md":
            dest_text = text if dest == md_path else dest.read_text(encoding="utf-8")
            if anchor not in anchors(dest_text):
                problems.append(f"{md_path.name}: link {target!r}: no heading with anchor #{anchor} in {dest.name}")
    return problems


def _module_exists(root: Path, module: str) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file() or (base / "__main__.py").is_file()


def code_block_problems(text: str, root: Path) -> list[str]:
    """Commands in fenced code blocks naming a scripts/ file, a `python -m pkg.mod` or a `python file.py` that is
    not in the tree under root."""
    problems = []
    for block in fenced_blocks(text):
        for token in _SCRIPT.findall(block):
            token = token.rstrip(".")
            if not (root / token).is_file():
                problems.append(f"code block names {token}, which is not a file")
        for module in _PYTHON_MODULE.findall(block):
            module = module.rstrip(".")
            if "." in module and not _module_exists(root, module):
                problems.append(f"code block runs python -m {module}, which is not a module under the repository")
        for path in _PYTHON_FILE.findall(block):
            if not (root / path).is_file():
                problems.append(f"code block runs python {path}, which is not a file")
    return problems


def too_long(text: str, limit: int = README_MAX_LINES) -> bool:
    return len(text.splitlines()) > limit


# The repository's own markdown.


def test_readme_is_at_most_200_lines():
    text = README.read_text(encoding="utf-8")
    assert not too_long(text), f"README.md has {len(text.splitlines())} lines (at most {README_MAX_LINES})"


@pytest.mark.parametrize("md_path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(md_path):
    assert broken_links(md_path) == []


def test_readme_code_blocks_name_existing_files():
    assert code_block_problems(README.read_text(encoding="utf-8"), REPO) == []


def test_docs_pages_exist_and_are_linked_from_the_readme():
    readme = README.read_text(encoding="utf-8")
    for page in ("data", "reproduce", "configuration", "results", "cpu_backend", "megatron_on_cpu"):
        assert (REPO / "docs" / f"{page}.md").is_file(), page
        assert f"](docs/{page}.md" in readme, f"README does not link docs/{page}.md"


# The checks themselves: each one reports what it is meant to catch.


def test_slugify_matches_github_anchors():
    assert slugify("Launch cost and the DYPO/GRPO step ratio") == "launch-cost-and-the-dypogrpo-step-ratio"
    assert slugify("Gradient variance (eq. 19)") == "gradient-variance-eq-19"
    assert slugify("`dypo.*` keys") == "dypo-keys"
    assert slugify("verl's vLLM rollout on CPU") == "verls-vllm-rollout-on-cpu"
    assert slugify("1. Train the rows") == "1-train-the-rows"
    assert slugify("Paper vs this recipe") == "paper-vs-this-recipe"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_link_checker_reports_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Known section\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    page = tmp_path / "page.md"
    text = (
        "# Page\n\n## Here\n\n"
        "[ok](other.md) [ok](other.md#known-section) [ok](#here) [ok](sub) [ok](https://example.com/x.md#y)\n"
        "[ok](mailto:a@b.c) `[in code](missing_in_code.md)` \\[escaped\\](missing_escaped)\n\n"
        "```\n[in a block](missing_in_block.md)\n```\n\n"
        "[bad](missing.md) [bad](other.md#no-such-section) [bad](#nowhere) [bad](sub/missing.py#L3)\n"
    )
    page.write_text(text, encoding="utf-8")
    problems = broken_links(page)
    assert len(problems) == 4, problems
    for target in ("missing.md", "other.md#no-such-section", "#nowhere", "sub/missing.py#L3"):
        assert any(repr(target) in p for p in problems), (target, problems)


def test_code_block_checker_reports_missing_files(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "run.sh").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "mod.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "sub" / "__main__.py").write_text("", encoding="utf-8")
    good = (
        "```bash\nbash scripts/run.sh\npython -m pkg.mod --x\npython -m pkg.sub\npython -m pytest -q\n"
        "python pkg/mod.py\n.venv/bin/python -m pkg.mod\n```\n"
    )
    assert code_block_problems(good, tmp_path) == []
    bad = (
        "`python -m pkg.inline_only` is prose\n\n"
        "```bash\nbash scripts/gone.sh\npython -m pkg.nothing\npython pkg/missing.py\n"
        "MODEL=x python3 -m pkg.sub.deeper\n```\n"
    )
    problems = code_block_problems(bad, tmp_path)
    assert len(problems) == 4, problems
    for name in ("scripts/gone.sh", "pkg.nothing", "pkg/missing.py", "pkg.sub.deeper"):
        assert any(name in p for p in problems), (name, problems)


def test_line_limit_check_can_fail():
    assert not too_long("line\n" * README_MAX_LINES)
    assert too_long("line\n" * (README_MAX_LINES + 1))
