"""The image is built from requirements.lock (every runtime dependency pinned, with hashes), and the overlay
example deploys it: what `make image` and `kubectl apply -k overlays/example` rely on."""
from __future__ import annotations

import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
# The image's Python (the Dockerfile's python:3.11-slim) on Linux, for the lock's environment markers.
IMAGE_ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
                     "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
                     "platform_python_implementation": "CPython", "platform_machine": "x86_64", "extra": ""}


def locked() -> dict[str, tuple[str, list[str], str]]:
    """name -> (version, hashes, marker) of each pin of the lock."""
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+))?\\", block)
        assert match, f"requirements.lock: not a pin with hashes: {block.splitlines()[0]}"
        name, version, marker = match.groups()
        entries[canonicalize_name(name)] = (version, re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
                                            (marker or "").strip())
    return entries


def runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


def test_the_lock_pins_each_runtime_dependency_of_pyproject_within_its_range() -> None:
    pins = locked()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: make lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name][0]}, outside {requirement}: make lock"
    assert all(hashes for _, hashes, _ in pins.values()), "a pin without --hash: pip --require-hashes refuses it"
    # Runtime only: what the demo and dev extras bring stays out of the image.
    assert not {"moto", "kmock", "pytest", "uv"} & set(pins)


def test_the_lock_is_closed_over_what_its_packages_require() -> None:
    """pip --require-hashes refuses to install a dependency the lock does not pin. The requirements of each
    locked package, as the installed one declares them (the test environment has the same packages; where a
    version differs, its requirements are not read), evaluated for the image's Linux and Python."""
    pins = locked()
    missing, read = {}, 0
    for name, (version, _, marker) in pins.items():
        if marker and not Marker(marker).evaluate(IMAGE_ENVIRONMENT):
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if distribution.version != version:
            continue
        read += 1
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(IMAGE_ENVIRONMENT):
                if canonicalize_name(requirement.name) not in pins:
                    missing.setdefault(name, []).append(str(requirement))
    assert read > len(pins) // 2, "too few locked packages could be read to say anything"
    assert missing == {}, "required, but not in requirements.lock: make lock"


def test_the_dockerfile_installs_from_the_lock_and_resolves_nothing_else() -> None:
    steps = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("RUN ")]
    installs = [s for s in steps if "pip install" in s]
    assert installs == ["RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock",
                        "RUN /opt/venv/bin/pip install --no-cache-dir --no-deps ."]
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert "requirements.lock" not in ignored and "*.lock" not in ignored


kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")


@kubectl
def test_the_overlay_example_deploys_the_image_it_names(tmp_path) -> None:
    """What `kubectl apply -k overlays/example` sends: the base with the overlay's image, and the CRD apart."""
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "overlays" / "example")], capture_output=True,
                         text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    images = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    overlay = yaml.safe_load((ROOT / "overlays" / "example" / "kustomization.yaml").read_text())
    [image] = overlay["images"]
    assert images == {f"{image['newName']}:{image['newTag']}"}
    base = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests")], capture_output=True, text=True,
                          check=True).stdout
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == \
        {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(base) if d}
