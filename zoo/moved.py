"""Class paths that moved: the old dotted path of a class -> where it lives now.

Configs, registry entries and Lightning checkpoints written before a class moved name it by its old path. Loaders
look a class path up here first (``resolve_class_path``) so an old file still loads, and the shipped-config test
uses the same table to compare ``--print_config`` output with what it was before the move.
"""

MOVED: dict[str, str] = {}


def resolve_class_path(path: str) -> str:
    """The class path ``path`` has today (itself when it never moved)."""
    seen = set()
    while path in MOVED and path not in seen:  # a class may have moved twice
        seen.add(path)
        path = MOVED[path]
    return path
