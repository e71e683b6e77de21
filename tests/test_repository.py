"""The repository speaks for itself: no text refers to a work tracker or to tooling that a reader of it does not have."""
import re
import subprocess
from pathlib import Path

from tools.notebook import REPO

# A tracker's numbers ("issue 4", "#16"), its vocabulary, and the machinery the work was done with.
FOREIGN = re.compile(r"\bissues? #?\d+|(?<![\w&/])#\d+\b|\bstop \d+\b|\btracker\b|\blent\b|\bdevice tool\b"
                     r"|\bsessions?\b|\bCEO\b|\bsteering\b", re.IGNORECASE)
PYTEST_SCOPE = 'scope="session"'  # pytest's own word for one test run


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        path = REPO / name
        if path.suffix in {".pt", ".png", ".zip"} or not path.is_file() or path == Path(__file__):
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_no_text_refers_to_a_tracker_or_foreign_tooling():
    found = [f"{name}: {match.group(0)!r}" for name, text in tracked_text_files()
             for match in FOREIGN.finditer(text.replace(PYTEST_SCOPE, ""))]
    assert not found, found[:10]


def test_the_pattern_catches_what_it_should():
    for text in ("see issue 16", "Issues 15 and 16", "fixed in #25", "stop 11", "a lent GPU", "one session's"):
        assert FOREIGN.search(text), text
    for text in ("the 4th issue of a journal", "#!/usr/bin/env bash", "`&#8203;`", "color #fff", "lentil"):
        assert not FOREIGN.search(text), text
