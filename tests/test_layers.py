"""The layers of the package, read from the code itself: every import of controller/ and devenv/ (lazy ones
inside functions too), parsed with `ast`.

1. No module imports a module of a higher layer (LAYERS, lowest first). A module in no layer fails the test:
   a new module is placed here on purpose.
2. No import circle between folders: a module at the top of controller/ is a node of its own, each
   subpackage (controller/aws/, controller/spec/, ...) and devenv/ one node; the graph of their imports has
   no cycle.
3. The operator never needs the dev environment: only the CLI's `demo` command imports devenv/, inside the
   command (the wheel and the image do not carry devenv/).
"""
from __future__ import annotations

import ast
import graphlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "devenv")

# Lowest first. A module may import modules of its own layer or of lower ones. Names are module paths or
# packages (a package stands for every module in it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation: names, ownership tags, settings, logs, certificate checks",
     ("controller", "controller.ownership", "controller.settings", "controller.logs", "controller.certs",
      "controller.readiness")),
    ("the public contract: spec models, status model, CRD, CloudFormation import",
     ("controller.spec", "controller.status_model", "controller.crd", "controller.cfn", "controller.tenancy")),
    ("the desired stack (pure)", ("controller.desired",)),
    ("the clients: AWS (with its budget and error codes) and Kubernetes", ("controller.aws", "controller.kube")),
    ("one module per AWS kind, and the read port they own", ("controller.resources",)),
    ("observe -> diff -> ordered plan -> apply", ("controller.engine", "controller.preflight")),
    ("the fleet: inventory (implements the read port), schedule, events", ("controller.fleet",)),
    ("status and what the operator runs beside the engine, and the composition root that wires it",
     ("controller.status", "controller.metrics", "controller.certificate_secrets", "controller.leader",
      "controller.tenancy_reads", "controller.wiring")),
    ("the faces, and the dev environment that drives them",
     ("controller.operator", "controller.cli", "controller.__main__", "devenv")),
]


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules()


def imports(name: str, path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(imported module of ours, line, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if n is not f}
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from controller import desired` imports a module, `from controller import GROUP` a name
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        for target in targets:
            while target and target not in MODULES:  # `import controller.aws.budget` -> that module
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                out.append((target, node.lineno, id(node) in in_function))
    return out


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best_len:
                best, best_len = index, len(member)
    return best


def node_of(module: str) -> str:
    """A folder node: the subpackage a module is in, or the module itself at the top of controller/."""
    parts = module.split(".")
    if parts[0] == "devenv":
        return "devenv"
    if len(parts) >= 2 and (ROOT / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def test_the_scan_sees_the_package() -> None:
    assert {"controller.engine", "controller.aws.clients", "controller.spec.resource", "devenv.kubernetes",
            "controller.resources.listener", "controller.fleet.inventory"} <= set(MODULES)
    edges = [(m, t) for m, p in MODULES.items() for t, _, _ in imports(m, p)]
    assert len(edges) > 150  # a broken parser would find nothing and pass everything
    assert ("controller.engine", "controller.resources.kinds") in edges
    assert ("controller.cli", "devenv.demo") in edges


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) < 0)
    assert unplaced == [], "place these modules in tests/test_layers.py LAYERS"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for module, path in MODULES.items():
        for target, line, _ in imports(module, path):
            if layer_of(target) > layer_of(module):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[layer_of(module)][0]}) imports "
                              f"{target} ({LAYERS[layer_of(target)][0]})")
    assert not upward, "\n".join(upward)


def test_no_import_circle_between_folders() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph.setdefault(node_of(module), set())
        for target, _, _ in imports(module, path):
            if node_of(target) != node_of(module):
                graph[node_of(module)].add(node_of(target))
    assert {"controller.aws", "controller.spec", "controller.fleet", "controller.resources", "devenv"} <= set(graph)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"an import circle between folders: {' -> '.join(exc.args[1])}") from None


def test_only_the_demo_command_imports_the_dev_environment() -> None:
    found = [(module, target, lazy) for module, path in MODULES.items() if module.startswith("controller")
             for target, _, lazy in imports(module, path) if target.startswith("devenv")]
    assert found == [("controller.cli", "devenv.demo", True)]
