"""Copy the quickstart into README.md.

GitHub's Markdown cannot include a file, so README.md carries a copy of
``examples/quickstart.py`` between two marker comments::

    <!-- quickstart: examples/quickstart.py -->
    ```python
    ...the file, byte for byte...
    ```
    <!-- /quickstart -->

This script rewrites what lies between the markers from the file the opening
marker names. ``tests/test_readme.py`` fails when the copy differs from the file.

    python scripts/sync_readme.py            # rewrite README.md if needed
    python scripts/sync_readme.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: The opening marker (naming the file, relative to the repository), the fenced
#: copy, and the closing marker.
BLOCK = re.compile(
    r"(?P<open><!-- quickstart: (?P<path>[^ ]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /quickstart -->)",
    re.DOTALL,
)
FENCE_OPEN = "```python\n"
FENCE_CLOSE = "```\n"


def fenced(source: str) -> str:
    """The block's body for ``source``: the file in a ``python`` fence."""
    if not source.endswith("\n"):
        source += "\n"
    return FENCE_OPEN + source + FENCE_CLOSE


def synced(readme: str, root: Path = ROOT) -> str:
    """``readme`` with the quickstart block rewritten from its file."""
    found = BLOCK.search(readme)
    if found is None:
        msg = "README.md has no '<!-- quickstart: PATH -->' ... '<!-- /quickstart -->' block"
        raise SystemExit(msg)
    source = (root / found["path"]).read_text(encoding="utf-8")
    return readme[:found.start("body")] + fenced(source) + readme[found.end("body"):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check: exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    wanted = synced(current)
    if current == wanted:
        print("README.md: the quickstart block is up to date")
        return 0
    if args.check:
        print("README.md: the quickstart block differs from its file; "
              "run: python scripts/sync_readme.py")
        return 1
    README.write_text(wanted, encoding="utf-8")
    print("README.md: the quickstart block rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
