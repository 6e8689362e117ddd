"""The user docs speak to users: no references to issue numbers (a reader cannot resolve
them; a docs section can be linked instead) in the README, docs/ (the generated pages
included), the config files and their README, or the report's captions and schema."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", REPO / "config" / "README.md", *REPO.glob("docs/*.md"),
                *REPO.glob("config/*.yaml"), *REPO.glob("workflow/report/*.rst"),
                *REPO.glob("workflow/schemas/*.yaml")])
# "issue 26", "Issues 12 and 14", "issue #3", "#28" (a colour such as #1b1b1b or a heading's
# "# " is none).
ISSUE = re.compile(r"\bissues?\s*#?\d+|(?<![\w&#/])#\d{1,5}(?![\w-])", re.IGNORECASE)


def issue_references(text: str) -> list[str]:
    return [m.group(0) for m in ISSUE.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_user_page_refers_to_an_issue_number(page):
    found = issue_references(page.read_text())
    assert not found, f"{page.relative_to(REPO)} refers to {found}: link a docs section instead"


def test_the_check_finds_issue_references_and_nothing_else():
    assert issue_references("Until issue 26 the class tied; see Issues 12, and #28.") == [
        "issue 26", "Issues 12", "#28"]
    assert issue_references("issue #3") == ["issue #3"]
    assert not issue_references("colour #1b1b1b or #123456; ## Heading; [a](#a-figure); "
                                "the issue of 2 prompts; &#8203;")
