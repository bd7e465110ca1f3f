"""The package as a user gets it: `python -m build` makes a wheel and an sdist; the wheel, installed into a fresh
venv (torch==2.13.0 first, then the wheel with its [dlib] extra, from the package registries through pip's cache),
runs `microx predict` on a test video with the model it carries, from a folder outside the checkout, and imports
nothing from the checkout.

Marked `wheel`: it takes minutes (the installs), so it has its own marker, which is not skipped (CI runs it with
the rest of `make test`); deselect it for quick local runs with ``pytest -m "not wheel"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from microx_hf.modeling_microx import CODE_FILES
from tests import media

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # as the Makefile and README pin it
# Committed files under microx_hf/ that are data, not code: every one must be in the wheel.
DATA_SUFFIXES = (".safetensors", ".json", ".npz", ".png", ".md", ".onnx")

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(1800)]


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment of a user with nothing of the checkout around: no PYTHONPATH, offline, fresh caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MICROX_", "HF_", "VIRTUAL_ENV"))}
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",  # the bundled model needs no Hub
        MICROX_OFFLINE="1",
        HF_HOME=str(tmp / "hf_home"),
        TORCH_HOME=str(tmp / "torch_home"),  # no FAN weights: "auto" is dlib, as for a new user
        PYTHONNOUSERSITE="1",
    )
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], timeout=600)
    return out


def test_build_makes_a_wheel_and_an_sdist_that_carry_the_model(dist):
    wheels, sdists = list(dist.glob("microx_hf-*.whl")), list(dist.glob("microx_hf-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    # The shipped folder with its code (for `trust_remote_code=True` where the package is not imported).
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", *CODE_FILES):
        assert f"microx_hf/default_model/{name}" in names, name
    tracked = subprocess.run(["git", "ls-files", "microx_hf"], cwd=REPO, capture_output=True, text=True).stdout.split()
    data = [p for p in tracked if p.endswith(DATA_SUFFIXES)]
    assert data and not [p for p in data if p not in names], "committed data files missing from the wheel"
    assert not [n for n in names if n.startswith(("tests/", "training/", "space/", "bench/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "microx = microx_hf.cli:main" in zipfile.ZipFile(wheels[0]).read(entry_points).decode()


_CHECK = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import entry_points

    main = entry_points(group="console_scripts")["microx"].load()
    code = main(["predict", sys.argv[1], "--json"])
    import microx_hf.predict

    files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    print(json.dumps({"code": code, "files": files, "default_model": str(microx_hf.predict.DEFAULT_MODEL),
                      "sys_path": sys.path, "torch": "torch" in sys.modules}))
    """
)


def test_the_wheel_installs_in_a_fresh_venv_and_predicts(dist, tmp_path):
    wheel = next(dist.glob("microx_hf-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    env = _clean_env(tmp_path)
    # torch first and pinned, as the README says: then the wheel's torch range is already met and nothing pulls a
    # multi-GB CUDA build.
    _run([*pip, "install", "--quiet", TORCH], timeout=900, env=env)
    _run([*pip, "install", "--quiet", f"{wheel}[dlib]"], timeout=1200, env=env)

    elsewhere = tmp_path / "elsewhere"
    video = media.make_face_video(elsewhere / "face.mp4", n_frames=30)
    proc = _run([str(venv / "bin" / "microx"), "predict", "face.mp4", "--json"], timeout=600, env=env, cwd=elsewhere)
    items = json.loads(proc.stdout)
    assert len(items) == 1 and items[0]["video"] == "face.mp4" and "error" not in items[0], proc.stderr
    # The shipped default's landmarks: the mesh backend (BlazeFace + Face Mesh on onnxruntime).
    assert items[0]["label"] in items[0]["labels"] and items[0]["landmark_backend"] == "mediapipe"
    assert items[0]["face_fraction"] > 0.9

    version = _run([str(venv / "bin" / "microx"), "--version"], timeout=300, env=env, cwd=elsewhere).stdout
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=60, env=env
        ).stdout.strip()
    )
    assert str(site / "microx_hf") in version

    # The same run through the console script's entry point, then a look at every module it imported.
    check = json.loads(
        _run([str(python), "-c", _CHECK, str(video)], timeout=600, env=env, cwd=elsewhere)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert check["code"] == 0
    assert not check["torch"], "the installed `microx predict` imported torch: the shipped model runs in onnxruntime"
    # Absolute paths only: torch's `torch.ops`/`torch.classes` namespaces carry bare names ("_ops.py").
    from_checkout = [f for f in check["files"] if os.path.isabs(f) and Path(f).resolve().is_relative_to(REPO)]
    assert not from_checkout, from_checkout
    assert not [p for p in check["sys_path"] if os.path.isabs(p) and Path(p).resolve().is_relative_to(REPO)]
    default_model = Path(check["default_model"])
    assert default_model.is_relative_to(site) and (default_model / "model.safetensors").is_file()
