"""Print the requirements setup.py declares, one a line, for `pip install -r` in an image
before the source is copied (a code change then keeps the dependency layers).

    python docker/requirements.py --extra train --exclude torch > /tmp/requirements.txt

Reads setup.py's `install_requires` and `extras_require` as literals (no import, no build);
a setup.py whose lists stop being literals makes this fail, not print a partial list.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

SETUP = Path(__file__).resolve().parent.parent / "setup.py"


def declared(source: str) -> tuple[list[str], dict[str, list[str]]]:
    """install_requires and extras_require of the setup() call in a setup.py's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            kw = {k.arg: k.value for k in node.keywords}
            return ast.literal_eval(kw["install_requires"]), ast.literal_eval(kw["extras_require"])
    raise ValueError("setup.py has no setup(...) call")


def project_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def requirements(source: str, extras: list[str], exclude: list[str], base: bool = True) -> list[str]:
    """The requirements of the base install (unless base is False) and the given extras,
    without the excluded projects (names compared case- and _/- insensitively)."""
    install, extra = declared(source)
    unknown = [e for e in extras if e not in extra]
    if unknown:
        raise ValueError(f"setup.py has no extra {', '.join(unknown)} (it has {', '.join(extra)})")
    chosen = list(install) if base else []
    for name in extras:
        chosen += extra[name]
    drop = {project_name(e) for e in exclude}
    return [r for r in chosen if project_name(r) not in drop]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="an extra of setup.py")
    parser.add_argument("--exclude", action="append", default=[], help="a project to leave out")
    parser.add_argument("--no-base", action="store_true", help="only the extras' requirements")
    args = parser.parse_args(argv)
    try:
        lines = requirements(SETUP.read_text(), args.extra, args.exclude, base=not args.no_base)
    except (ValueError, KeyError) as err:
        print(f"docker/requirements.py: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
