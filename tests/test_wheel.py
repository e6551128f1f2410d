"""What the image installs: the wheel without extras, in a clean virtualenv, imports every module it ships and
starts `ecsalb run --help`; the dev environment (devenv/) is not in it.

Offline: the wheel is built with this virtualenv's setuptools (no build isolation), installed with
`pip --no-index --no-deps`, and its runtime dependencies (the closure of its requirements without extras, read
from the installed distributions' metadata) are made visible to the clean virtualenv from this one's files, so
moto, kmock and pytest are not among them. The Dockerfile installs the same dependencies pinned from
requirements.lock (tests/test_image.py), then the project with `pip install --no-deps .`.
"""
from __future__ import annotations

import importlib.metadata
import os
import pathlib
import subprocess
import sys
import textwrap
import venv
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIST = "ecs-alb-operator"


def runtime_closure(name: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions `name` needs without extras, itself excluded."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [name]
    while todo:
        for text in importlib.metadata.distribution(todo.pop()).requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra's requirement, or another platform's
            key = canonicalize_name(req.name)
            if key not in seen:
                seen[key] = importlib.metadata.distribution(req.name)
                todo.append(req.name)
    return list(seen.values())


def link_distributions(dists: list[importlib.metadata.Distribution], into: pathlib.Path) -> None:
    """Each distribution's top-level files and folders (and its .dist-info), linked into `into`."""
    into.mkdir()
    for dist in dists:
        base = pathlib.Path(dist.locate_file(""))
        tops = {pathlib.PurePath(f).parts[0] for f in dist.files or []}
        for top in sorted(tops - {"..", "__pycache__"}):
            target = into / top
            if (base / top).exists() and not target.exists():
                target.symlink_to(base / top)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.skip(f"the wheel cannot be built offline here: {build.stderr.strip()[-400:]}")
    (found,) = out.glob("ecs_alb_operator-*.whl")
    return found


@pytest.fixture(scope="module")
def clean_venv(wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    home = tmp_path_factory.mktemp("venv")
    venv.create(home / "venv", with_pip=True, symlinks=True)
    python = home / "venv" / "bin" / "python"
    install = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel],
                             capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"pip cannot install the wheel offline here: {install.stderr.strip()[-400:]}")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    link_distributions(runtime_closure(DIST), home / "runtime")
    pathlib.Path(site, "ecsalb-runtime-deps.pth").write_text(f"{home / 'runtime'}\n")
    return python


def run(python: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([python, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def shipped_modules(wheel: pathlib.Path) -> list[str]:
    names = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")]
    return sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names)


def test_the_wheel_carries_the_operator_only(wheel: pathlib.Path) -> None:
    modules = shipped_modules(wheel)
    assert "controller.operator" in modules and "controller.spec.resource" in modules
    assert {m.split(".")[0] for m in modules} == {"controller"}  # no devenv/, no tests/, no bench/
    assert "controller/data/example.yaml" in zipfile.ZipFile(wheel).namelist()


def test_the_runtime_closure_leaves_out_the_extras() -> None:
    names = {canonicalize_name(d.metadata["Name"]) for d in runtime_closure(DIST)}
    assert {"kopf", "boto3", "pydantic", "cryptography"} <= names
    assert not names & {"moto", "kmock", "pytest", "jsonschema"}


def test_every_shipped_module_imports_without_the_extras(wheel: pathlib.Path, clean_venv: pathlib.Path,
                                                         tmp_path: pathlib.Path) -> None:
    script = textwrap.dedent(f"""
        import importlib, importlib.util, sys
        for name in {shipped_modules(wheel)!r}:
            if name.endswith("__main__"):
                continue  # runs the CLI: started below
            importlib.import_module(name)
        assert importlib.util.find_spec("devenv") is None, "devenv is importable"
        for extra in ("moto", "kmock", "pytest"):
            assert importlib.util.find_spec(extra) is None, extra + " is importable"
        print(sys.modules["controller"].__file__)
    """)
    done = run(clean_venv, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(clean_venv.parent.parent))  # the installed copy, not the checkout


def test_ecsalb_run_starts(clean_venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    ecsalb = clean_venv.parent / "ecsalb"
    done = subprocess.run([ecsalb, "run", "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage: ecsalb run" in done.stdout and "--kube-url" in done.stdout


def test_the_demo_says_what_it_needs(clean_venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    done = run(clean_venv, "-m", "controller", "demo", cwd=tmp_path)
    assert done.returncode == 1
    assert "no demo here: it runs from a checkout of the repository" in done.stderr
