"""The README is a reference, not a lab notebook: at most 200 lines, no dated measurement outside the run report it
links, and every relative link of the README and of docs/ resolves (the run reports, the published figure)."""
import re

from conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_short_and_undated():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    # dates only in links to the run reports (their file names), never in the prose
    prose = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)
    assert not DATE.findall(prose), DATE.findall(prose)


def test_every_relative_link_resolves():
    for doc in _docs():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.relative_to(ROOT)}: broken link {target}"


def test_run_reports_are_named_by_date_and_listed():
    runs = ROOT / "docs" / "runs"
    reports = sorted(p for p in runs.glob("*.md") if p.name != "README.md")
    assert reports
    index = (runs / "README.md").read_text()
    for p in reports:
        assert re.fullmatch(r"20\d\d-\d\d-\d\d-[a-z0-9-]+\.md", p.name), p.name
        assert f"({p.name})" in index, f"{p.name} is not listed in docs/runs/README.md"
    # reference docs link the reports, they do not hold dated runs
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert not re.search(r"^#+ .*\b20\d\d-\d\d-\d\d", doc.read_text(), re.M), doc.name
