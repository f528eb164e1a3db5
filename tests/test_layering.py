"""The layout of ``ifan_tf``: its parts import each other as their docstrings say, without cycles.

Each sub-package's ``__init__.py`` docstring has a "May import:" paragraph naming the parts of the
project it imports (``ifan_tf.io, ifan_tf.model.`` or ``nothing of the project.``); the package's
own docstring lists the parts lowest first. The imports are read from the source (``ast``: every
``import`` and ``from ... import``, also those inside functions), not by importing it, and must be
exactly the declared ones, so the table cannot drift in either direction.
"""
import ast
import pathlib
import re

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "ifan_tf"
# The project's other top-level packages and scripts (what "of the project" means besides ifan_tf).
OUTSIDE = ("configs", "data_prep", "benchmarks", "studies", "tests", "main")
MAY_IMPORT = re.compile(r"^May import: (.*?)\.\s*$", re.MULTILINE | re.DOTALL)
PART_LINE = re.compile(r"^  (\w+) {2,}\S", re.MULTILINE)


def sub_packages():
    return sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))


def declared_imports(name):
    """The parts named in the "May import:" paragraph of ``ifan_tf/<name>/__init__.py``."""
    docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
    paragraph = next((block for block in docstring.split("\n\n") if block.startswith("May import: ")), None)
    match = MAY_IMPORT.match(paragraph or "")
    assert match, f"ifan_tf/{name}/__init__.py: its docstring needs a paragraph 'May import: ifan_tf.x, ... .'"
    text = " ".join(match.group(1).split())
    if text == "nothing of the project":
        return set()
    return {item.strip().removeprefix("ifan_tf.") for item in text.split(",")}


def imported_modules(path, root=REPO_ROOT):
    """Absolute names of every module ``path`` (under ``root``) imports (``from a import b``: ``a`` and ``a.b``)."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def part_of(name):
    """The part of the project a module name belongs to: a sub-package of ifan_tf or an OUTSIDE name."""
    parts = name.split(".")
    if parts[0] == "ifan_tf" and len(parts) > 1 and (PACKAGE / parts[1] / "__init__.py").is_file():
        return parts[1]
    if parts[0] in OUTSIDE:
        return parts[0]
    return None


def actual_imports():
    """``{sub-package: {part: [(file, module), ...]}}`` of the imports that cross from one part to another."""
    graph = {name: {} for name in sub_packages()}
    for name in graph:
        for path in sorted((PACKAGE / name).rglob("*.py")):
            for module in imported_modules(path):
                part = part_of(module)
                if part and part != name:
                    graph[name].setdefault(part, []).append((str(path.relative_to(REPO_ROOT)), module))
    return graph


def layer_order():
    """The parts as ``ifan_tf/__init__.py`` lists them, lowest first."""
    return PART_LINE.findall(ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or "")


def test_the_package_root_holds_no_modules():
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_the_root_docstring_lists_every_part_once():
    order = layer_order()
    assert sorted(order) == sub_packages() and len(set(order)) == len(order), order


@pytest.mark.parametrize("name", sub_packages())
def test_each_part_imports_exactly_what_its_docstring_declares(name):
    declared, actual = declared_imports(name), actual_imports()[name]
    unknown = sorted(part for part in declared if part not in sub_packages() and part not in OUTSIDE)
    assert not unknown, f"ifan_tf/{name}: 'May import:' names no part of the project: {unknown}"
    undeclared = {part: sites for part, sites in actual.items() if part not in declared}
    assert not undeclared, (f"ifan_tf/{name} imports parts its docstring does not allow (add them to 'May import:' "
                            f"if that is the design, else move the code): {undeclared}")
    unused = sorted(declared - set(actual))
    assert not unused, f"ifan_tf/{name}: 'May import:' names parts it no longer imports: {unused}"


def test_parts_import_only_parts_listed_before_them():
    """No cycles: the declared table follows the root docstring's order (which is then a topological order)."""
    order = layer_order()
    upward = [(name, part) for name in order for part in declared_imports(name)
              if part in order and order.index(part) >= order.index(name)]
    assert not upward, f"parts importing themselves or parts listed after them in ifan_tf/__init__.py: {upward}"


def test_the_library_does_not_import_configs_benchmarks_studies_or_main():
    sites = [site for name, parts in actual_imports().items() for part, found in parts.items()
             if part in ("configs", "benchmarks", "studies", "tests", "main") for site in found]
    sites += [(str(path.relative_to(REPO_ROOT)), module) for path in PACKAGE.glob("*.py")
              for module in imported_modules(path) if part_of(module) in OUTSIDE]
    assert not sites, f"ifan_tf imports code outside the library (pass it in from main.py instead): {sites}"


def test_the_reader_sees_lazy_and_relative_imports(tmp_path):
    """The checks above rest on ``imported_modules``: it finds imports inside functions and resolves relative ones."""
    module = PACKAGE / "modes" / "export.py"
    assert "ifan_tf.litert.export" in imported_modules(module)  # imported inside run_litert
    source = tmp_path / "ifan_tf" / "io" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from ..model import precision\n    from . import image_io\n")
    assert imported_modules(source, tmp_path) == {"ifan_tf.model", "ifan_tf.model.precision", "ifan_tf.io",
                                                  "ifan_tf.io.image_io"}
