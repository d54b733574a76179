"""docs/certificates.md's table of outcomes is true to the code: one row per outcome the
document may state, with the words the PDF uses and the JSON's `outcome` and `action`."""

from __future__ import annotations

import re
from pathlib import Path

from retentiond.certificates.document import ACTION_WORDS, OUTCOMES
from retentiond.wording.certificates import OUTCOME_WORDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "certificates.md"


def _rows() -> list[list[str]]:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("### What each outcome means, and the check behind it")
    table = text[start:text.index("\n\n", text.index("| the PDF says", start))]
    lines = [line for line in table.splitlines() if line.startswith("| **")]
    return [[cell.strip().strip("*`") for cell in line.strip("|").split(" | ")]
            for line in lines]


def test_the_table_names_every_outcome_once_with_the_pdfs_words() -> None:
    """Each outcome of OUTCOMES appears once; each row's words are the PDF's for its action
    word, and the action words are those the JSON carries."""
    rows = _rows()
    assert sorted(r[1] for r in rows) == sorted(OUTCOMES)
    assert {(r[0], r[2]) for r in rows} == {(words, key) for key, words in OUTCOME_WORDS.items()}
    assert set(ACTION_WORDS.values()) <= {r[2] for r in rows}
    assert len(re.findall(r"^### Outcomes$", DOCS.read_text(encoding="utf-8"), re.M)) == 0
