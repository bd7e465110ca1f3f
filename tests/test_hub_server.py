"""The test Hub (tests/hub_server.py) answers huggingface_hub, transformers and datasets as the real Hub would.

Every test talks to the session's server through HF_ENDPOINT (set in conftest.py) with the real client libraries.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub_server import ANSWERED_CALLS, CLIENT_VERSION, start_hub_server

WEIGHTS = bytes(range(256)) * 40  # 10 KiB, binary: goes to LFS by name and by content


@pytest.fixture
def api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=hub.token)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "weights").mkdir(parents=True)
    (src / "notes.txt").write_text("a small text file\n")
    (src / "weights" / "model.safetensors").write_bytes(WEIGHTS)
    return src


def test_client_points_at_the_test_hub(hub):
    assert hub.url == constants.ENDPOINT
    assert hub.url.startswith("http://127.0.0.1:")
    assert constants.HF_HUB_DISABLE_XET and not constants.HF_HUB_OFFLINE
    assert os.environ["HF_HOME"].startswith(str(Path(hub.state.root).parent))


def test_the_installed_client_is_the_one_the_server_was_written_for():
    import huggingface_hub

    installed = huggingface_hub.__version__
    assert installed.split(".")[0] == CLIENT_VERSION.split(".")[0], (
        f"tests/hub_server.py answers the requests of huggingface_hub {CLIENT_VERSION}; {installed} is installed. "
        "Run test_each_answered_call_once against it, fix the routes it reports, then update CLIENT_VERSION."
    )


def test_each_answered_call_once(api, hub, hub_repo_id, folder, tmp_path):
    """Every call in ANSWERED_CALLS, once, through the installed client: each must succeed without a request the
    server has no route for (a new client version that asks for something new shows up here)."""
    from huggingface_hub import CommitOperationAdd, HfFileSystem

    done: list[str] = []
    unanswered_before = len(hub.state.unanswered)

    def call(name: str, result: object = None) -> object:
        done.append(name)
        return result

    call("whoami", api.whoami())
    call("create_repo", api.create_repo(hub_repo_id, private=True))
    assert call("repo_exists", api.repo_exists(hub_repo_id))
    assert call("repo_info", api.repo_info(hub_repo_id)).private
    first = call(
        "create_commit",
        api.create_commit(hub_repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="add a.txt"),
    )
    call("upload_file", api.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id=hub_repo_id))
    call("upload_folder", api.upload_folder(folder_path=folder, repo_id=hub_repo_id))
    assert call("model_info", api.model_info(hub_repo_id)).id == hub_repo_id
    assert "weights/model.safetensors" in call("list_repo_files", api.list_repo_files(hub_repo_id))
    assert "weights" in [e.path for e in call("list_repo_tree", list(api.list_repo_tree(hub_repo_id)))]
    assert [p.path for p in call("get_paths_info", api.get_paths_info(hub_repo_id, ["a.txt"]))] == ["a.txt"]
    assert call("file_exists", api.file_exists(hub_repo_id, "b.txt"))
    call("create_branch", api.create_branch(hub_repo_id, branch="dev"))
    call("create_tag", api.create_tag(hub_repo_id, tag="v1", revision=first.oid))
    refs = call("list_repo_refs", api.list_repo_refs(hub_repo_id))
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    assert call("list_repo_commits", api.list_repo_commits(hub_repo_id))[-2].commit_id == first.oid
    call("delete_tag", api.delete_tag(hub_repo_id, tag="v1"))
    call("delete_branch", api.delete_branch(hub_repo_id, branch="dev"))
    call("delete_file", api.delete_file("a.txt", repo_id=hub_repo_id))
    call("delete_folder", api.delete_folder("weights", repo_id=hub_repo_id))
    path = call("hf_hub_download", api.hf_hub_download(hub_repo_id, "b.txt", cache_dir=tmp_path / "c1"))
    assert Path(path).read_bytes() == b"b"
    snapshot = Path(call("snapshot_download", api.snapshot_download(hub_repo_id, cache_dir=tmp_path / "c2")))
    assert (snapshot / "notes.txt").is_file() and not (snapshot / "a.txt").exists()
    fs = call("HfFileSystem", HfFileSystem(endpoint=hub.url, token=hub.token))
    assert fs.cat_file(f"{hub_repo_id}/notes.txt") == b"a small text file\n"
    api.create_repo(hub_repo_id, repo_type="dataset")
    assert call("dataset_info", api.dataset_info(hub_repo_id)).id == hub_repo_id
    call("delete_repo", api.delete_repo(hub_repo_id, repo_type="dataset"))

    assert sorted(done) == sorted(ANSWERED_CALLS), "keep ANSWERED_CALLS and this test in step"
    assert hub.state.unanswered[unanswered_before:] == [], "the client made requests the server has no route for"


def test_upload_folder_then_download(api, hub, hub_repo_id, folder, tmp_path):
    url = api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id and url.endpoint == hub.url
    api.create_repo(hub_repo_id, exist_ok=True)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(hub_repo_id)
    assert conflict.value.response.status_code == 409

    commit = api.upload_folder(folder_path=folder, repo_id=hub_repo_id, commit_message="add files")
    assert len(commit.oid) == 40
    # preupload reports each file's remote oid (git sha1, or sha256 for LFS): an unchanged folder makes no commit
    assert api.upload_folder(folder_path=folder, repo_id=hub_repo_id).oid == commit.oid

    info = api.model_info(hub_repo_id, files_metadata=True)
    assert info.sha == commit.oid
    files = {s.rfilename: s for s in info.siblings}
    assert set(files) == {".gitattributes", "notes.txt", "weights/model.safetensors"}
    assert files["notes.txt"].lfs is None
    lfs = files["weights/model.safetensors"].lfs
    assert lfs is not None and lfs.size == len(WEIGHTS)
    assert lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    # the LFS object really went through the batch API and is stored under its sha256
    assert (hub.state.root / "lfs" / lfs.sha256[:2] / lfs.sha256).read_bytes() == WEIGHTS

    assert sorted(api.list_repo_files(hub_repo_id)) == sorted(files)
    tree = {e.path: e for e in api.list_repo_tree(hub_repo_id, recursive=True)}
    assert set(tree) == set(files) | {"weights"}
    assert tree["weights/model.safetensors"].lfs.sha256 == lfs.sha256
    top = [e.path for e in api.list_repo_tree(hub_repo_id)]
    assert "weights/model.safetensors" not in top and "weights" in top
    paths = api.get_paths_info(hub_repo_id, ["notes.txt", "weights", "missing.txt"])
    assert [p.path for p in paths] == ["notes.txt", "weights"]

    weights = hf_hub_download(hub_repo_id, "weights/model.safetensors", cache_dir=tmp_path / "cache")
    assert Path(weights).read_bytes() == WEIGHTS
    snapshot = Path(snapshot_download(hub_repo_id, cache_dir=tmp_path / "cache2"))
    assert snapshot.name == commit.oid
    assert (snapshot / "notes.txt").read_text() == "a small text file\n"
    assert (snapshot / "weights" / "model.safetensors").read_bytes() == WEIGHTS


def test_dataset_repo_and_deletions(api, hub_repo_id, tmp_path):
    api.create_repo(hub_repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x,y\n1,2\n", path_in_repo="data/a.csv", repo_id=hub_repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x,y\n3,4\n", path_in_repo="data/b.csv", repo_id=hub_repo_id, repo_type="dataset")
    assert api.file_exists(hub_repo_id, "data/b.csv", repo_type="dataset")
    api.delete_file("data/a.csv", repo_id=hub_repo_id, repo_type="dataset")
    assert api.list_repo_files(hub_repo_id, repo_type="dataset") == [".gitattributes", "data/b.csv"]
    api.delete_folder("data", repo_id=hub_repo_id, repo_type="dataset")
    assert api.list_repo_files(hub_repo_id, repo_type="dataset") == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("data/b.csv", repo_id=hub_repo_id, repo_type="dataset")
    assert api.dataset_info(hub_repo_id).id == hub_repo_id
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(hub_repo_id)  # it is a dataset, not a model


def test_tags_branches_and_pull_requests(api, hub_repo_id, tmp_path):
    api.create_repo(hub_repo_id)
    first = api.upload_file(path_or_fileobj=b"one", path_in_repo="f.txt", repo_id=hub_repo_id)
    api.create_tag(hub_repo_id, tag="v1", tag_message="first")
    with pytest.raises(HfHubHTTPError):
        api.create_tag(hub_repo_id, tag="v1")
    api.create_tag(hub_repo_id, tag="v1", exist_ok=True)
    api.create_branch(hub_repo_id, branch="dev")
    api.create_branch(hub_repo_id, branch="dev", exist_ok=True)
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="f.txt", repo_id=hub_repo_id, revision="dev")
    second = api.upload_file(path_or_fileobj=b"two", path_in_repo="f.txt", repo_id=hub_repo_id)
    pr = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="f.txt", repo_id=hub_repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1 and pr.pr_url.endswith("/discussions/1")
    pr2 = api.upload_file(path_or_fileobj=b"more", path_in_repo="g.txt", repo_id=hub_repo_id, revision=pr.pr_revision)
    assert pr2.pr_url is None

    cache = tmp_path / "cache"

    def read(revision: str, name: str = "f.txt") -> str:
        return Path(hf_hub_download(hub_repo_id, name, revision=revision, cache_dir=cache)).read_text()

    assert read("main") == "two"
    assert read("v1") == "one"
    assert read("dev") == "dev"
    assert read("refs/pr/1") == "proposal" and read("refs/pr/1", "g.txt") == "more"
    assert read(first.oid) == "one" and read(first.oid[:12]) == "one"
    assert api.model_info(hub_repo_id, revision="v1").sha == first.oid
    assert Path(snapshot_download(hub_repo_id, revision="refs/pr/1", cache_dir=cache)).name == pr2.oid

    refs = api.list_repo_refs(hub_repo_id, include_pull_requests=True)
    assert {b.name: b.target_commit for b in refs.branches}["main"] == second.oid
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", first.oid)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", pr2.oid)]
    assert [c.title for c in api.list_repo_commits(hub_repo_id)][:2] == ["Upload f.txt with huggingface_hub"] * 2
    with pytest.raises(RevisionNotFoundError):
        read("no-such-branch")
    with pytest.raises(EntryNotFoundError):
        read("main", "missing.txt")


def test_file_system_ranges_pagination_unicode_names_and_repo_deletion(api, hub, hub_repo_id, tmp_path):
    from huggingface_hub import HfFileSystem

    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.bin", repo_id=hub_repo_id)
    api.upload_file(path_or_fileobj="é".encode(), path_in_repo="dossier é/naïve.txt", repo_id=hub_repo_id)
    fs = HfFileSystem(endpoint=hub.url, token=hub.token)
    with fs.open(f"{hub_repo_id}/w.bin", "rb", block_size=100) as handle:  # reads with HTTP Range requests
        handle.seek(1000)
        assert handle.read(10) == WEIGHTS[1000:1010]
    assert fs.cat_file(f"{hub_repo_id}/w.bin", start=-5) == WEIGHTS[-5:]
    assert fs.info(f"{hub_repo_id}/w.bin")["size"] == len(WEIGHTS)
    assert fs.ls(f"{hub_repo_id}/dossier é", detail=False) == [f"{hub_repo_id}/dossier é/naïve.txt"]
    assert Path(hf_hub_download(hub_repo_id, "dossier é/naïve.txt", cache_dir=tmp_path)).read_text() == "é"
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(hub_repo_id, path_in_repo="no-such-folder"))

    hub.state.page_size = 2  # the client follows the `Link: rel="next"` pages
    try:
        assert len(list(api.list_repo_tree(hub_repo_id, recursive=True))) == 4  # 2 pages
    finally:
        hub.state.page_size = 1000

    api.delete_repo(hub_repo_id)
    assert not api.repo_exists(hub_repo_id)
    api.delete_repo(hub_repo_id, missing_ok=True)


def test_errors_are_the_clients_normal_ones_and_fast(api, hub, hub_repo_id, tmp_path):
    start = time.monotonic()
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/does-not-exist", "config.json", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("test-user/does-not-exist", cache_dir=tmp_path)
    wrong = HfApi(endpoint=hub.url, token="hf_wrong_token")
    with pytest.raises(HfHubHTTPError) as unauthorized:
        wrong.create_repo(hub_repo_id)
    assert unauthorized.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as whoami:
        wrong.whoami()
    assert whoami.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as download:
        hf_hub_download("test-user/does-not-exist", "config.json", token="hf_wrong_token", cache_dir=tmp_path)
    assert download.value.response.status_code == 401
    assert api.whoami()["name"] == "test-user"
    with pytest.raises(HfHubHTTPError) as anonymous:
        HfApi(endpoint=hub.url, token=False).create_repo(hub_repo_id)
    assert anonymous.value.response.status_code == 401
    api.create_repo(hub_repo_id, private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).model_info(hub_repo_id)
    assert api.model_info(hub_repo_id).private
    assert time.monotonic() - start < 10, "errors must come back at once, not after retries"


def test_server_restart_keeps_repos_and_cli_serves(tmp_path):
    root = tmp_path / "hub"
    with start_hub_server(root) as first:
        api = HfApi(endpoint=first.url, token=first.token)
        api.create_repo("someone/kept")
        commit = api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.bin", repo_id="someone/kept")
    with start_hub_server(root) as second:
        api = HfApi(endpoint=second.url, token=second.token)
        info = api.model_info("someone/kept", files_metadata=True)
        assert info.sha == commit.oid and {s.rfilename: s.size for s in info.siblings}["w.bin"] == len(WEIGHTS)

    # the stdlib-only CLI, for manual use
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("hub_server.py")), "--root", str(root), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while "HF_ENDPOINT=" not in line:
            line = proc.stderr.readline()
            assert line, "the CLI exited before serving"
        url = line.split("HF_ENDPOINT=")[1].split()[0]
        api = HfApi(endpoint=url, token="hf_test_token")
        assert api.model_info("someone/kept").sha == commit.oid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tiny_microx():
    from microx_hf.configuration_microx import MicroXConfig
    from microx_hf.modeling_microx import MicroXForVideoClassification

    config = MicroXConfig.from_preset(
        "default",
        regions=["face", "mouth"],
        num_frames=3,
        image_size=16,
        stem_channels=[4],
        hidden_size=5,
        head_hidden_size=7,
    )
    torch.manual_seed(0)
    return MicroXForVideoClassification(config).eval()


def test_transformers_model_round_trip(hub_repo_id, tmp_path):
    from microx_hf.modeling_microx import MicroXForVideoClassification

    model = tiny_microx()
    first = model.push_to_hub(hub_repo_id, commit_message="tiny MicroX")
    api = HfApi()
    api.create_tag(hub_repo_id, tag="v0.1", revision=first.oid)
    files = api.list_repo_files(hub_repo_id)
    assert "config.json" in files and "model.safetensors" in files
    lfs = {s.rfilename: s.lfs for s in api.model_info(hub_repo_id, files_metadata=True).siblings}
    assert lfs["model.safetensors"] is not None and lfs["config.json"] is None

    # a second push to a branch must not change what the tag points to
    changed = tiny_microx()
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(1.0)
    changed.push_to_hub(hub_repo_id, revision="experiment")

    loaded = MicroXForVideoClassification.from_pretrained(hub_repo_id, revision="v0.1", cache_dir=tmp_path)
    expected = model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)
    other = MicroXForVideoClassification.from_pretrained(hub_repo_id, revision="experiment", cache_dir=tmp_path)
    name = next(iter(expected))
    torch.testing.assert_close(other.state_dict()[name], expected[name] + 1.0)
    assert loaded.config.regions == ["face", "mouth"]


def test_transformers_push_to_hub_create_pr(hub_repo_id, tmp_path):
    from microx_hf.modeling_microx import MicroXForVideoClassification

    model = tiny_microx()
    model.push_to_hub(hub_repo_id)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    pr = model.push_to_hub(hub_repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    loaded = MicroXForVideoClassification.from_pretrained(hub_repo_id, revision=pr.pr_revision, cache_dir=tmp_path)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, model.state_dict()[name], rtol=0, atol=0)


def test_datasets_push_to_hub_and_load_dataset(hub_repo_id, tmp_path):
    import datasets

    rows = {"text": ["a", "bb", "ccc", "dddd"], "label": [0, 1, 0, 1], "x": [[1.5, 2.0], [3.0], [], [4.0, 5.0, 6.0]]}
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
            "x": datasets.Sequence(datasets.Value("float32")),
        }
    )
    original = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({k: v[:3] for k, v in rows.items()}, features=features),
            "test": datasets.Dataset.from_dict({k: v[3:] for k, v in rows.items()}, features=features),
        }
    )
    original.push_to_hub(hub_repo_id)
    files = HfApi().list_repo_files(hub_repo_id, repo_type="dataset")
    assert "README.md" in files and any(f.endswith(".parquet") for f in files), files

    loaded = datasets.load_dataset(hub_repo_id, cache_dir=str(tmp_path / "datasets"))
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        assert loaded[split].features == features
        assert loaded[split].to_dict() == original[split].to_dict()
    # a second push replaces the shards (old ones are deleted in the same commit) and keeps the card consistent
    smaller = datasets.DatasetDict({"train": original["train"].select([0])})
    smaller.push_to_hub(hub_repo_id)
    reloaded = datasets.load_dataset(hub_repo_id, cache_dir=str(tmp_path / "datasets2"))
    assert reloaded["train"].to_dict() == smaller["train"].to_dict()
    # the dataset card carries the features; its YAML went through /api/validate-yaml
    card = Path(hf_hub_download(hub_repo_id, "README.md", repo_type="dataset", cache_dir=tmp_path)).read_text()
    assert "dataset_info:" in card and "class_label:" in card and "pos" in card


REMOTE_CODE_SCRIPT = """
import importlib.abc, json, sys

class BlockMicroX(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "microx_hf":
            raise ModuleNotFoundError(f"blocked: {name}")

sys.meta_path.insert(0, BlockMicroX())
import torch
from transformers import AutoModelForVideoClassification

torch.set_num_threads(1)
model = AutoModelForVideoClassification.from_pretrained(sys.argv[1], revision="v1", trust_remote_code=True)
print(json.dumps({"module": type(model).__module__, "sums": {k: v.double().sum().item() for k, v in model.state_dict().items()}}))
"""


@pytest.mark.slow  # a fresh Python that imports torch and transformers: about 10 s on a busy 2-core machine
def test_custom_code_loads_from_the_hub_without_the_package(hub_repo_id, tmp_path):
    model = tiny_microx()
    commit = model.push_to_hub(hub_repo_id)
    HfApi().create_tag(hub_repo_id, tag="v1", revision=commit.oid)
    assert {"configuration_microx.py", "modeling_microx.py"} <= set(HfApi().list_repo_files(hub_repo_id))
    # A fresh process (HF_ENDPOINT, HF_TOKEN and HF_HOME come from conftest through the environment) that cannot
    # import microx_hf must fetch the model code from the Hub, as a user without the package would.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home")}
    out = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, hub_repo_id], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules"), result["module"]
    expected = {k: v.double().sum().item() for k, v in model.state_dict().items()}
    assert result["sums"] == pytest.approx(expected, rel=0, abs=0)
