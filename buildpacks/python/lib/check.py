"""Build helper: python3 check.py APP SOURCE NAME

Compiles every .py file of APP (not in hidden directories) without writing
byte code, and checks that SOURCE binds NAME at its top level (a def, a
class, an assignment or an import). On failure it prints the details, then
one line that says what failed, on stderr, and exits 1."""

import ast
import os
import sys
import traceback


def fail(details, summary):
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    sys.stderr.write(summary + "\n")
    sys.exit(1)


def python_files(app):
    for root, dirs, files in os.walk(app):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.relpath(os.path.join(root, f), app)


def top_level_names(tree):
    """The names a module binds at its top level; None when it has
    `from x import *` (anything could be bound)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def main():
    app, source, name = sys.argv[1:4]
    trees = {}
    for rel in python_files(app):
        with open(os.path.join(app, rel), "rb") as f:
            text = f.read()
        try:
            trees[rel] = compile(text, rel, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
            compile(trees[rel], rel, "exec", dont_inherit=True)
        except SyntaxError as e:
            details = "".join(traceback.format_exception_only(type(e), e))
            where = f"{e.filename}:{e.lineno}" + (f":{e.offset}" if e.offset else "")
            fail(details, f"Python syntax error: {where}: {e.msg}")
        except ValueError as e:  # null bytes
            fail("", f"Python syntax error: {rel}: {e}")
    tree = trees.get(os.path.normpath(source))
    if tree is None:
        fail("", f"{source} is not in the app")
    names = top_level_names(tree)
    if names is not None and name not in names:
        functions = sorted(
            n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")
        )
        fail("", f"function {name} is not defined in {source} (it defines: {', '.join(functions) or 'no functions'})")


if __name__ == "__main__":
    main()
