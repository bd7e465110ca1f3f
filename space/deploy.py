"""Deploy the MicroX demo as a Hugging Face Space in one command.

    python space/deploy.py --repo_id ORG/NAME [--model PATH_OR_HUB_ID] [--private | --public] [--dry_run DIR]

assembles a self-contained Space folder and uploads it with `huggingface_hub` as a Space repo (private unless
`--public`; log in first with `hf auth login`, or set HF_TOKEN). `--dry_run DIR` writes the folder to DIR and
uploads nothing. The folder:

- `app.py`, its own modules (`app_texts.py`) and `examples/`, from this folder;
- `microx_hf/`: the library, unpacked from the wheel this checkout builds (`pip wheel --no-deps`). microx-hf is not
  on PyPI, and a wheel inside the folder cannot be named in `requirements.txt`: a Space installs its requirements
  before it copies the repository in (its build runs `RUN --mount=target=/tmp/requirements.txt,source=requirements.txt
  pip install -r /tmp/requirements.txt gradio[oauth,mcp]==<sdk_version> ...`, then `COPY ./ /home/user/app`), so
  the package's files sit beside `app.py`, which imports them, and its dependencies come from the package index;
- `requirements.txt`: torch pinned first to the version installed here, from PyTorch's CPU index (the package's
  torch range alone would pull a multi-GB CUDA build), then the wheel's own dependencies (`Requires-Dist`, with the
  `dlib` extra: the offline landmark backend) and the app's (the `space` extra), read from the wheel so they cannot
  drift from `pyproject.toml`; gradio is left out, since the Space installs it from `sdk_version`;
- `packages.txt`: the Debian packages OpenCV needs;
- `README.md`: the Space header (`sdk: gradio`, `sdk_version` = the gradio installed here, `app_file: app.py`,
  `python_version` = this interpreter's) and this folder's README, with what the model is built on read from the
  model's own card (`microx_hf.card`);
- the model: `--model PATH` copies a local checkpoint folder to `model/` (safetensors only); `--model ORG/NAME`
  names a Hub model; without `--model`, the checkpoint that ships inside `microx_hf/` runs. `settings.json` tells
  the app which (`MICROX_MODEL`; a Space variable of that name still wins).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

SPACE_DIR = Path(__file__).resolve().parent
ROOT = SPACE_DIR.parent
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Extras of microx-hf the Space needs: the offline landmark backend and the app's own packages.
EXTRAS = ("dlib", "space")
# Installed by the Space itself (gradio from `sdk_version`), or pinned on a line of its own (torch).
NOT_REQUIRED = ("gradio", "torch", "microx-hf")
# Files of a checkpoint folder that a Space does not need (training state, pickles MicroX refuses to load).
MODEL_IGNORE = ("checkpoint-*", "runs", ".git*", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "optimizer*",
                "scheduler*", "rng_state*", "trainer_state.json")  # fmt: skip
MODEL_MARKERS = ("<!-- BEGIN model (space/deploy.py, from the model card) -->", "<!-- END model -->")


def build_wheel(out: Path) -> Path:
    """Build microx-hf's wheel from this checkout into `out` (pip, no dependencies); returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)], check=True
    )
    return next(out.glob("microx_hf-*.whl"))


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's dependencies with the `EXTRAS` (markers evaluated here), without `NOT_REQUIRED`, sorted."""
    from email.parser import Parser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(archive.read(name).decode()).get_all("Requires-Dist") or []
    kept = {}
    for line in requires:
        requirement = Requirement(line)
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in ("", *EXTRAS)
        )
        if wanted and canonicalize_name(requirement.name) not in NOT_REQUIRED:
            requirement.marker = None
            kept[canonicalize_name(requirement.name)] = str(requirement)
    return [kept[key] for key in sorted(kept)]


def torch_pin() -> str:
    """`torch==X.Y.Z`: the version installed here, without its build label (+cpu, +cu126)."""
    return f"torch=={metadata.version('torch').split('+')[0]}"


def requirements_text(wheel: Path) -> str:
    """The Space's requirements.txt."""
    version = re.search(r"microx_hf-([^-]+)-", wheel.name).group(1)
    lines = [
        f"# Written by space/deploy.py from microx-hf {version}'s wheel (its dependencies and the {' and '.join(EXTRAS)}",
        "# extras); the library itself is the microx_hf/ folder beside app.py. The Space installs gradio itself",
        "# (sdk_version in README.md). torch comes first, pinned, from PyTorch's CPU index: the package's torch range",
        "# alone would pull a multi-GB CUDA build.",
        f"--extra-index-url {TORCH_INDEX}",
        torch_pin(),
        *wheel_requirements(wheel),
    ]
    return "\n".join(lines) + "\n"


def model_section(model: str | Path | None) -> str:
    """The README's paragraph on the model: which checkpoint runs and what its card says it is built on."""
    from microx_hf.card import training_summary
    from microx_hf.predict import DEFAULT_MODEL

    source = DEFAULT_MODEL if model is None else model
    summary = training_summary(source)
    if model is None:
        which = "The checkpoint that ships with microx-hf (`microx_hf/default_model/`)"
    elif Path(model).is_dir():
        which = f"The checkpoint `{Path(model).name}` (in `model/`)"
    else:
        which = f"The Hub model [`{model}`](https://huggingface.co/{model})"
    said = f", in its model card's words: {summary}" if summary else "; its model card says what it was trained on."
    return f"**The model.** {which}{said}"


def readme_text(model: str | Path | None) -> str:
    """This folder's README with the installed gradio as `sdk_version`, this Python as `python_version`, and the
    model's paragraph (`model_section`) between its markers."""
    import gradio

    text = (SPACE_DIR / "README.md").read_text()
    text = re.sub(r"(?m)^sdk_version: .*$", f"sdk_version: {gradio.__version__}", text, count=1)
    python = f'"{sys.version_info.major}.{sys.version_info.minor}"'
    text = re.sub(r"(?m)^python_version: .*$", f"python_version: {python}", text, count=1)
    return render_model_section(text, model)


def render_model_section(text: str, model: str | Path | None) -> str:
    """`text` (a README with the `MODEL_MARKERS`) with the model's paragraph between them."""
    begin, end = (re.escape(marker) for marker in MODEL_MARKERS)
    pattern = re.compile(rf"({begin}\n)(?:.*?\n)?({end})", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the README has no {MODEL_MARKERS[0]} ... {MODEL_MARKERS[1]} markers")
    return pattern.sub(lambda m: m.group(1) + model_section(model) + "\n" + m.group(2), text)


APP_FILES = ("app.py", "app_texts.py")  # the app and its own modules


def copy_model(model: Path, out: Path) -> None:
    """Copy a local checkpoint folder into `out` (what inference needs: no training state, no pickles)."""
    from microx_hf.predict import check_safetensors

    if not (model / "config.json").is_file():
        raise SystemExit(f"--model {model}: not a model folder (no config.json)")
    check_safetensors(model)
    shutil.copytree(model, out, ignore=shutil.ignore_patterns(*MODEL_IGNORE))


def assemble(out: Path, model: str | None = None) -> Path:
    """Write the Space folder into `out` (absent or empty); returns it."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a new folder (the Space folder is written from scratch)")
    out.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        shutil.copy2(SPACE_DIR / name, out / name)
    shutil.copy2(SPACE_DIR / "packages.txt", out / "packages.txt")
    shutil.copytree(SPACE_DIR / "examples", out / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(out, [n for n in archive.namelist() if n.startswith("microx_hf/")])
        (out / "requirements.txt").write_text(requirements_text(wheel))
    settings = {}
    local = model is not None and Path(model).expanduser().exists()
    if local:
        copy_model(Path(model).expanduser(), out / "model")
        settings["MICROX_MODEL"] = "model"
    elif model is not None:
        settings["MICROX_MODEL"] = model
    if settings:
        (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (out / "README.md").write_text(readme_text(Path(model).expanduser() if local else model))
    return out


def upload(folder: Path, repo_id: str, private: bool = True) -> str:
    """Create the Space repo (gradio SDK) if needed and upload the folder as one commit; returns the Space's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    existing = api.repo_info(repo_id, repo_type="space")
    if bool(existing.private) != private:
        print(f"note: the Space {repo_id} already exists and is {'private' if existing.private else 'public'}; "
              "its visibility was left as it is (change it in the Space's settings)")  # fmt: skip
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="space",
        commit_message="Deploy MicroX (space/deploy.py)",
    )
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Deploy the MicroX demo as a Hugging Face Space (a self-contained folder, uploaded).",
        epilog="Example: python space/deploy.py --repo_id me/microx --dry_run /tmp/microx-space",
    )
    parser.add_argument("--repo_id", required=True, metavar="ORG/NAME", help="the Space to create or update")
    parser.add_argument("--model", default=None, metavar="PATH_OR_HUB_ID",
                        help="a local checkpoint folder (copied into the Space) or a Hub model id (default: the "
                             "checkpoint that ships with microx-hf)")  # fmt: skip
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=True,
                            help="a private Space (the default)")  # fmt: skip
    visibility.add_argument("--public", dest="private", action="store_false", help="a public Space")
    parser.add_argument("--dry_run", type=Path, default=None, metavar="DIR",
                        help="write the Space folder to DIR and upload nothing")  # fmt: skip
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", args.repo_id):
        parser.error(f"--repo_id {args.repo_id}: give ORG/NAME")
    if args.dry_run is not None:
        folder = assemble(args.dry_run, args.model)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        print(f"wrote {folder} ({len(files)} files); would upload it to the {'private' if args.private else 'public'} "
              f"Space {args.repo_id}")  # fmt: skip
        return 0
    with tempfile.TemporaryDirectory(prefix="microx-space-") as tmp:
        folder = assemble(Path(tmp) / "space", args.model)
        url = upload(folder, args.repo_id, args.private)
    print(f"deployed {args.repo_id} ({'private' if args.private else 'public'}): {url}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout: the library is the one beside this folder
    sys.exit(main())
