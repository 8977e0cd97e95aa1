"""The literal module-level assignments of Python source, read with ``ast``, never executed.

A scenario's metadata (TITLE, PORT, NOTICE, EXPECT, ...) is plain literals in its
source: ``tracer run`` reads them from the file, the handout from the copy stored in
the capture.  Pure: text in, values out.
"""

from __future__ import annotations

import ast


def literal_assignments(source: str | bytes, filename: str = "<scenario>"
                        ) -> tuple[dict[str, object], set[str]]:
    """``NAME = literal`` values and the names of the top-level functions of ``source``.

    An assignment whose value is not a literal is left out; source that is not valid
    Python raises ``SyntaxError`` or ``ValueError`` (the caller words the error)."""
    tree = ast.parse(source, filename)
    values: dict[str, object] = {}
    funcs: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.add(node.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            if not isinstance(node.targets[0], ast.Name):
                continue
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return values, funcs
