"""The ```python blocks of a Markdown document, run as written in a fresh interpreter in an empty folder.

A block is skipped only when the line before its fence says so, with the reason: `<!-- snippet: not run: ... -->`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests import media

_BLOCK = re.compile(r"(?:^<!-- snippet: not run: (?P<reason>[^>]*?) -->\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


@dataclass
class Snippet:
    document: str
    index: int
    code: str
    skip: str | None  # why it is not run, or None

    @property
    def name(self) -> str:
        return f"{self.document}#{self.index}"


def python_blocks(text: str, document: str) -> list[Snippet]:
    return [
        Snippet(document, i, m.group("code"), m.group("reason")) for i, m in enumerate(_BLOCK.finditer(text), start=1)
    ]


def media_folder(folder: Path) -> Path:
    """An empty folder with the files the documents' examples read: a face video as face.mp4 and video.mp4."""
    folder.mkdir(parents=True, exist_ok=True)
    video = media.make_face_video(folder / "face.mp4", n_frames=24, size=(320, 240))
    shutil.copy(video, folder / "video.mp4")
    return folder


def run(snippet: Snippet, folder: Path, hub=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the snippet in `folder` with the package installed (not the checkout on the path) and an empty Hugging
    Face cache; Hub ids resolve on the test Hub when `hub` is given."""
    script = folder / f"snippet_{snippet.index}.py"
    script.write_text(snippet.code)
    return subprocess.run(
        [sys.executable, script.name], cwd=folder, env=fresh_env(folder, hub), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def fresh_env(folder: Path, hub=None) -> dict[str, str]:
    """A user's environment: no PYTHONPATH, an empty Hugging Face cache in `folder`, offline unless `hub` (the test
    Hub) is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MICROX_", "HF_"))}
    env.update(OMP_NUM_THREADS="1", HF_HOME=str(folder / ".hf_home"), PYTHONNOUSERSITE="1")
    if hub is None:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=hub.token, HF_HUB_DISABLE_XET="1")
    return env


def without_microx(repo: Path) -> str:
    """The first lines of a script that runs as if microx-hf were not installed: its modules cannot be imported and
    neither the checkout nor the current folder is on the path."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):  # as if microx-hf were not installed
            def find_spec(self, name, path=None, target=None):
                if name == "microx_hf" or name.startswith("microx_hf."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, Block())
        sys.path = [p for p in sys.path if p not in ("", {str(repo)!r})]
        """
    )
