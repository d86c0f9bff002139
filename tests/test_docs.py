"""The documentation stays true to the tree: every relative link in README.md and docs/
resolves (file and heading), none leaves the repository, the README stays a front page, and
the workspace table of docs/architecture.md is what Cargo says the crates depend on."""

import json
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *ROOT.joinpath("docs").rglob("*.md")])
README_BYTES_MAX = 10 * 1024
# What the generic task crate must not link (docs/architecture.md).
TASKS_MUST_NOT_LINK = ["mongodb", "reqwest", "aws-sigv4", "jsonwebtoken", "roxmltree"]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's and mdBook's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(path: pathlib.Path):
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    for m in LINK.finditer(text):
        yield m.group(1)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc):
    bad = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if ROOT not in dest.parents and dest != ROOT:
            bad.append(f"{target}: outside the repository")
        elif not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{doc.relative_to(ROOT)}: " + "; ".join(bad)


def test_no_file_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.split()
    bad = []
    for name in tracked:
        if not name.endswith((".md", ".rs", ".toml")):
            continue
        text = (ROOT / name).read_text(errors="replace")
        if "../shared" in text:
            bad.append(name)
    assert not bad, f"files naming ../shared (outside the repository): {bad}"


def test_the_readme_is_a_front_page():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_BYTES_MAX, f"README.md is {size} bytes; move reference text to docs/"
    summary = (ROOT / "docs" / "SUMMARY.md").read_text()
    listed = {(ROOT / "docs" / t).resolve() for t in re.findall(r"\]\(([^)]+)\)", summary)}
    pages = {p.resolve() for p in ROOT.joinpath("docs").rglob("*.md")
             if p.name != "SUMMARY.md"}
    assert pages <= listed, f"pages missing from docs/SUMMARY.md: {sorted(pages - listed)}"


def workspace():
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["packages"]


def architecture_table():
    """crate -> (folder, allowed workspace dependencies) from docs/architecture.md."""
    rows = {}
    text = (ROOT / "docs" / "architecture.md").read_text()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[1].startswith("`maestro-"):
            continue
        crate = cells[1].strip("`")
        allowed = set() if cells[3] == "(none)" else {
            "maestro-" + c.strip() for c in cells[3].split(",")}
        rows[crate] = (cells[0].strip("`").rstrip("/"), allowed)
    return rows


def test_crates_depend_only_as_the_architecture_table_says():
    table = architecture_table()
    packages = {p["name"]: p for p in workspace()}
    assert set(packages) == set(table), (
        f"docs/architecture.md lists {sorted(table)}, the workspace has {sorted(packages)}")
    bad = []
    for name, p in packages.items():
        folder, allowed = table[name]
        manifest = pathlib.Path(p["manifest_path"]).parent.relative_to(ROOT)
        if str(manifest) != folder:
            bad.append(f"{name} is in {manifest}/, the table says {folder}/")
        deps = {d["name"] for d in p["dependencies"]
                if d["name"].startswith("maestro-") and d["kind"] is None}
        if deps - allowed:
            bad.append(f"{name} depends on {sorted(deps - allowed)}, not allowed by the table")
    assert not bad, "; ".join(bad)


def test_the_task_crate_links_no_service_clients():
    out = subprocess.run(["cargo", "tree", "-p", "maestro-tasks", "-e", "normal", "--prefix",
                          "none"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    linked = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert not linked & set(TASKS_MUST_NOT_LINK), sorted(linked & set(TASKS_MUST_NOT_LINK))


def test_large_source_files_say_why():
    bad = []
    for folder in ("workers/src", "api/src"):
        for f in sorted(ROOT.joinpath(folder).rglob("*.rs")):
            lines = f.read_text().splitlines()
            code = len(lines)
            if "#[cfg(test)]" in f.read_text():
                code = next(i for i, l in enumerate(lines) if l.startswith("#[cfg(test)]"))
            head = "\n".join(lines[:20]).lower()
            if code > 500 and "this file is long" not in head:
                bad.append(f"{f.relative_to(ROOT)}: {code} lines before its tests")
    assert not bad, "files over ~500 lines without a reason at their top: " + "; ".join(bad)
