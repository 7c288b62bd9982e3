"""The documentation a newcomer reads: the README stays short, and every link between
the README, CHANGELOG.md and docs/ leads to a file and a heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) (.+)$")


def _prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(2)) for line in _prose(page) if (m := HEADING.match(line))}


def broken_links(page: Path) -> list[str]:
    broken = []
    for line in _prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check here
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def test_every_link_between_the_pages_leads_somewhere() -> None:
    found = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in PAGES}
    assert {page: links for page, links in found.items() if links} == {}


def test_each_topic_has_its_page_and_the_readme_links_them_all() -> None:
    topics = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert topics >= {
        "configuration.md", "api.md", "channels.md", "delivery.md", "several-gateways.md",
        "security.md", "operations.md", "architecture.md", "benchmarks.md",
    }  # fmt: skip
    linked = {
        t.partition("#")[0] for line in _prose(ROOT / "README.md") for t in LINK.findall(line)
    }
    assert {f"docs/{topic}" for topic in topics} <= linked


def test_the_readme_is_what_a_newcomer_reads_in_ten_minutes() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


def test_the_checker_finds_a_broken_file_and_a_broken_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Backup and restore\n\n"
        "[ok](#backup-and-restore) [ok](page.md#title) [gone](missing.md) [bad](#nowhere)\n"
        "```\n[in code](ignored.md)\n```\n[web](https://example.com/x.md)\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "#nowhere: no heading #nowhere in page.md",
    ]
    assert slug("WhatsApp's 24-hour window") == "whatsapps-24-hour-window"
    assert slug("Bots: a bot answers first, the agents take over") == (
        "bots-a-bot-answers-first-the-agents-take-over"
    )
