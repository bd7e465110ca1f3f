"""A small Hugging Face Hub endpoint on 127.0.0.1 for tests, written with the Python standard library only.

The real Hub cannot be reached from the test machines, and no PyPI package serves an upload-capable Hub API, so
the tests talk to this server through ``HF_ENDPOINT``. It was written against ``huggingface_hub`` ``CLIENT_VERSION``
(2.4) and answers the requests of these calls (``ANSWERED_CALLS``; ``tests/test_hub_server.py`` runs each of them
once against the installed client and fails with a clear message when its major version is not the one named here):

- account: ``whoami``;
- repos: ``create_repo`` (``private=`` honoured), ``delete_repo``, ``repo_exists``, ``repo_info``/``model_info``/
  ``dataset_info``, ``list_repo_files``, ``list_repo_tree`` (paginated), ``get_paths_info``, ``file_exists``;
- refs: ``list_repo_refs`` (with pull requests), ``list_repo_commits``, ``create_branch``/``delete_branch``,
  ``create_tag``/``delete_tag``;
- commits: ``create_commit`` and what builds on it (``upload_file``, ``upload_folder``, ``delete_file``,
  ``delete_folder``, ``create_pr=True``): ``preupload``, the NDJSON ``commit`` endpoint, the Git LFS batch API with
  basic upload and verify actions;
- downloads: ``hf_hub_download``, ``snapshot_download`` and ``HfFileSystem`` through ``/resolve/`` (``HEAD`` and
  ``GET``, with ranges).

That is enough for ``PreTrainedModel.push_to_hub``/``from_pretrained`` (also with ``trust_remote_code``) and
``datasets`` ``push_to_hub``/``load_dataset`` (whose card YAML goes through ``/api/validate-yaml``).

What it does not do: Xet storage (it never advertises Xet, so clients need ``HF_HUB_DISABLE_XET=1``; the Xet token
route answers 501 saying so), discussions other than the ``refs/pr/N`` refs of pull requests, gated repos, spaces'
runtime (a Space repo is created with its SDK, which a repo info reports, and holds files like any repo). Repos, commits and refs are kept in memory and mirrored to ``<root>/repos/<type>s/<namespace>/<name>/
repo.json``; regular blobs live beside it, LFS objects in ``<root>/lfs/``, so a restarted server finds them again.

Authentication: a request whose ``Authorization: Bearer`` token is not in ``tokens`` gets 401 "Invalid credentials
in Authorization header" (as the Hub answers); writes need a valid token; private repos are invisible (404, as on
the Hub) to a request without one, so a test can check that an anonymous read of a private repo is refused. A request
the server has no route for is answered 404 and recorded in ``state.unanswered``.

Usage::

    with start_hub_server(tmp_path) as hub:
        os.environ["HF_ENDPOINT"] = hub.url  # before huggingface_hub is imported

    python tests/hub_server.py --root /tmp/hub --port 8765
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

logger = logging.getLogger(__name__)

# The client this server was written against; tests/test_hub_server.py compares the installed one's major version.
CLIENT_VERSION = "2.4"
# The huggingface_hub calls whose requests are answered (see the module docstring).
ANSWERED_CALLS = (
    "whoami",
    "create_repo",
    "repo_exists",
    "repo_info",
    "model_info",
    "dataset_info",
    "create_commit",
    "upload_file",
    "upload_folder",
    "list_repo_files",
    "list_repo_tree",
    "get_paths_info",
    "file_exists",
    "list_repo_refs",
    "list_repo_commits",
    "create_branch",
    "delete_branch",
    "create_tag",
    "delete_tag",
    "delete_file",
    "delete_folder",
    "hf_hub_download",
    "snapshot_download",
    "HfFileSystem",
    "delete_repo",
)
DEFAULT_TOKENS = ("hf_test_token",)
DEFAULT_USER = "test-user"
REPO_TYPES = ("model", "dataset", "space")
SPACE_SDKS = ("gradio", "docker", "static")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Files at or above this size go to LFS whatever their name (the Hub's threshold is 10 MB).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
# The patterns of the `.gitattributes` the Hub writes into every new repo (abridged): such files go to LFS.
# fmt: off
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst",
    "*tfevents*", "*.mp4", "*.avi", "*.mov", "*.mkv", "*.webm", "*.png", "*.jpg", "*.jpeg", "*.wav", "*.mp3",
    "*.flac", "*.dat",
)
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS).encode()
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# Words that follow a repo id in `/api/{type}s/{repo_id}/{action}/...` (to tell a legacy one-segment id apart).
ACTIONS = (
    "revision", "tree", "paths-info", "refs", "commits", "preupload", "commit", "branch", "tag", "xet-write-token",
    "xet-read-token",
)
# fmt: on
RE_SHA = re.compile(r"[0-9a-f]{7,40}")
RE_PR = re.compile(r"refs/pr/(\d+)")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: sha1 of ``b"blob <size>\\0" + data`` (what the Hub reports as ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubError(Exception):
    """An HTTP error answered to the client, with the ``X-Error-Code`` huggingface_hub maps to an exception."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


@dataclass
class Repo:
    """One repository: its commits (each with a full tree), branches, tags and pull-request refs.

    A tree maps a file path to ``{"oid": git blob id, "size": int, "lfs": {"oid", "size", "pointerSize"} | None,
    "commit": id of the commit that last wrote it}``.
    """

    repo_type: str
    repo_id: str
    private: bool = False
    created_at: str = field(default_factory=_now)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[str, str] = field(default_factory=dict)  # "N" -> commit id of refs/pr/N
    sdk: str | None = None  # a Space's SDK ("gradio", "docker", "static"), as created

    def resolve(self, revision: str) -> str:
        """The commit id a branch, tag, ``refs/heads|tags|pr/...`` name or (abbreviated) commit id points to.

        Branches win over tags of the same name, as in git.
        """
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if name in self.branches and not revision.startswith("refs/tags/"):
            return self.branches[name]
        if name in self.tags and not revision.startswith("refs/heads/"):
            return self.tags[name]
        match = RE_PR.fullmatch(revision)
        if match and match[1] in self.pulls:
            return self.pulls[match[1]]
        if RE_SHA.fullmatch(revision):
            found = [sha for sha in self.commits if sha.startswith(revision)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def to_json(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("repo_type", "repo_id", "private", "created_at", "commits", "branches", "tags", "pulls", "sdk")
        }


class HubState:
    """Everything the server stores, under one lock. Blobs are files on disk; metadata is mirrored to JSON."""

    def __init__(self, root: Path, tokens: Iterable[str] = DEFAULT_TOKENS, user: str = DEFAULT_USER):
        self.root = Path(root)
        self.tokens = set(tokens)
        self.user = user
        self.lock = threading.RLock()
        self.page_size = 1000  # entries per page of a tree listing
        self.unanswered: list[str] = []  # "METHOD /path" of every request without a route
        self.repos: dict[tuple[str, str], Repo] = {}
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        for meta in sorted(self.root.glob("repos/*/*/*/repo.json")):
            data = json.loads(meta.read_text())
            self.repos[(data["repo_type"], data["repo_id"])] = Repo(**data)

    # Storage ----------------------------------------------------------------------------------------------------
    def repo_dir(self, repo: Repo) -> Path:
        return self.root / "repos" / f"{repo.repo_type}s" / repo.repo_id

    def save(self, repo: Repo) -> None:
        path = self.repo_dir(repo) / "repo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo.to_json()))
        tmp.replace(path)

    def lfs_path(self, oid: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, f"Invalid LFS oid: {oid!r}")
        return self.root / "lfs" / oid[:2] / oid

    def blob_path(self, repo: Repo, oid: str) -> Path:
        return self.repo_dir(repo) / "blobs" / oid

    def write_blob(self, repo: Repo, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = self.blob_path(repo, oid)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return oid

    def file_path(self, repo: Repo, entry: dict[str, Any]) -> Path:
        """Where the content of a tree entry lives: the LFS store or the repo's blobs."""
        return self.lfs_path(entry["lfs"]["oid"]) if entry.get("lfs") else self.blob_path(repo, entry["oid"])

    # Repos and commits ------------------------------------------------------------------------------------------
    def get_repo(self, repo_type: str, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token is None):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool, sdk: str | None = None) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, f"You already created this {repo_type} repo")
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, sdk=sdk)
        self.repos[(repo_type, repo_id)] = repo
        # Like the Hub, a new repo starts with one commit holding the default `.gitattributes`.
        oid = self.write_blob(repo, GITATTRIBUTES)
        tree = {".gitattributes": {"oid": oid, "size": len(GITATTRIBUTES), "lfs": None}}
        repo.branches["main"] = self.add_commit(repo, None, tree, "initial commit", "")
        self.save(repo)
        return repo

    def add_commit(self, repo: Repo, parent: str | None, tree: dict[str, Any], title: str, message: str) -> str:
        date = _now()
        seed = json.dumps([repo.repo_id, parent, sorted(tree), title, date, len(repo.commits), time.monotonic_ns()])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        tree = {path: {**entry, "commit": entry.get("commit") or sha} for path, entry in tree.items()}
        repo.commits[sha] = {"parent": parent, "tree": tree, "title": title, "message": message, "date": date}
        return sha


def _entry_json(path: str, entry: dict[str, Any], commit: dict[str, Any] | None) -> dict[str, Any]:
    """A file as the tree and paths-info APIs describe it (``size`` is the real size, also for LFS files)."""
    out: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry.get("lfs"):
        out["lfs"] = dict(entry["lfs"])
    if commit is not None:
        out["lastCommit"] = {"id": entry["commit"], "title": commit["title"], "date": commit["date"]}
    return out


def _folder_json(path: str, tree: dict[str, Any], sha: str, commit: dict[str, Any] | None) -> dict[str, Any]:
    oid = hashlib.sha1(json.dumps(sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(path + "/"))).encode())
    out: dict[str, Any] = {"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": path}
    if commit is not None:
        out["lastCommit"] = {"id": sha, "title": commit["title"], "date": commit["date"]}
    return out


def _folders(tree: dict[str, Any]) -> set[str]:
    return {"/".join(parts[:i]) for parts in (p.split("/") for p in tree) for i in range(1, len(parts))}


def _is_lfs(path: str, size: int, sample: bytes) -> bool:
    name = path.rsplit("/", 1)[-1]
    return size >= LFS_SIZE_THRESHOLD or b"\0" in sample or any(fnmatch(name, pattern) for pattern in LFS_PATTERNS)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request to a ``_route_*`` method; every answer carries a ``Content-Length`` (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server: HubHTTPServer

    # Plumbing -----------------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
        logger.debug("hub %s - %s", self.address_string(), format % args)

    @property
    def state(self) -> HubState:
        return self.server.state

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            # http.server encodes headers as strict latin-1: escape anything else (a non-ASCII file name).
            self.send_header(key, " ".join(str(value).split()).encode("ascii", "backslashreplace").decode())
        self.end_headers()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        headers = {"Content-Type": "application/json", **(headers or {})}
        headers.setdefault("Content-Length", str(len(body)))
        self._send_headers(status, headers)
        if body and not head:
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _token(self, required: bool = False) -> str | None:
        """The caller's valid token, or None when there is none; raises 401 on an unknown token."""
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.lower().startswith("bearer ") else None
        if token is not None and token not in self.state.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        if required and token is None:
            raise HubError(401, "You must be authenticated to do this (pass a token).")
        return token

    def _handle(self, method: str) -> None:
        # The whole body is read first, whatever the answer, so that the kept-alive connection stays in step.
        self._body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        try:
            split = urlsplit(self.path)
            parts = [unquote(p) for p in split.path.split("/")[1:]]
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            self._dispatch(method, parts, query)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            body = json.dumps({"error": err.message, **err.extra}).encode()
            self._send(err.status, body, headers, head=method == "HEAD")
        except Exception as err:  # a server bug: answer 500 rather than leave the client waiting
            logger.exception("hub server error on %s %s", method, self.path)
            self._send(500, json.dumps({"error": f"{type(err).__name__}: {err}"}).encode(), head=method == "HEAD")

    def body(self) -> bytes:
        return self._body

    def body_json(self) -> Any:
        try:
            return json.loads(self.body() or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    # Routing ------------------------------------------------------------------------------------------------------
    def _dispatch(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        if parts[:1] == ["api"]:
            return self._dispatch_api(method, parts[1:], query)
        if parts[:1] == ["_lfs"] and len(parts) == 3:
            return self._route_lfs_object(method, parts[1], parts[2])
        repo_type, rest = "model", parts
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, rest = parts[0][:-1], parts[1:]
        if method in ("GET", "HEAD") and "resolve" in rest[1:3]:
            at = rest.index("resolve", 1)
            if len(rest) >= at + 3:
                return self._route_resolve(
                    method, repo_type, "/".join(rest[:at]), rest[at + 1], "/".join(rest[at + 2 :])
                )
        if (
            method == "POST"
            and len(rest) >= 6
            and rest[-4:] == ["info", "lfs", "objects", "batch"]
            and rest[-5].endswith(".git")
        ):
            return self._route_lfs_batch(repo_type, "/".join(rest[:-5] + [rest[-5][: -len(".git")]]))
        self._unknown(method)

    def _dispatch_api(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        account_routes: dict[tuple[str, str], Callable[[], None]] = {
            ("GET", "whoami-v2"): self._route_whoami,
            ("POST", "repos/create"): self._route_create_repo,
            ("DELETE", "repos/delete"): self._route_delete_repo,
            ("POST", "validate-yaml"): lambda: self._json({"errors": [], "warnings": []}),
            ("GET", "agent-harnesses"): lambda: self._json({"standardEnvVars": [], "harnesses": {}}),
        }
        if (method, "/".join(parts)) in account_routes:
            return account_routes[method, "/".join(parts)]()
        if len(parts) < 3 or parts[0] not in ("models", "datasets", "spaces"):
            return self._unknown(method)
        # `/api/{type}s/{namespace}/{name}[/{action}/{args...}]`; legacy ids without a namespace are one segment shorter
        repo_type = parts[0][:-1]
        ns_len = 1 if parts[2] in ACTIONS else 2
        repo_id = "/".join(parts[1 : 1 + ns_len])
        action = parts[1 + ns_len] if len(parts) > 1 + ns_len else None
        args = parts[2 + ns_len :]
        rev = "/".join(args) or "main"  # revisions arrive quoted as one segment: "refs%2Fpr%2F1"
        create_pr = query.get("create_pr") == "1"
        repo_routes: dict[tuple[str, str | None], Callable[[], None]] = {
            ("GET", None): lambda: self._route_repo_info(repo_type, repo_id, "main", query),
            ("GET", "revision"): lambda: self._route_repo_info(repo_type, repo_id, rev, query),
            ("GET", "tree"): lambda: self._route_tree(
                repo_type, repo_id, args[0] if args else "main", "/".join(args[1:]), query
            ),
            ("POST", "paths-info"): lambda: self._route_paths_info(repo_type, repo_id, rev),
            ("GET", "refs"): lambda: self._route_refs(repo_type, repo_id, query),
            ("GET", "commits"): lambda: self._route_commits(repo_type, repo_id, rev),
            ("POST", "preupload"): lambda: self._route_preupload(repo_type, repo_id, rev),
            ("POST", "commit"): lambda: self._route_commit(repo_type, repo_id, rev, create_pr),
            ("POST", "branch"): lambda: self._route_branch(method, repo_type, repo_id, rev),
            ("DELETE", "branch"): lambda: self._route_branch(method, repo_type, repo_id, rev),
            ("POST", "tag"): lambda: self._route_tag(method, repo_type, repo_id, rev),
            ("DELETE", "tag"): lambda: self._route_tag(method, repo_type, repo_id, rev),
        }
        if action in ("xet-write-token", "xet-read-token"):
            raise HubError(501, "This test Hub does not serve Xet storage: set HF_HUB_DISABLE_XET=1.")
        if (method, action) not in repo_routes:
            return self._unknown(method)
        return repo_routes[method, action]()

    def _route_whoami(self) -> None:
        self._token(required=True)
        access = {"displayName": "test", "role": "write"}
        user = self.state.user
        self._json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"accessToken": access}})

    def _unknown(self, method: str) -> None:
        logger.warning("hub server: no route for %s %s", method, self.path)
        self.state.unanswered.append(f"{method} {urlsplit(self.path).path}")
        raise HubError(404, f"This test Hub has no route for {method} {urlsplit(self.path).path}")

    def _url(self, repo: Repo) -> str:
        return f"{self.server.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # Repos --------------------------------------------------------------------------------------------------------
    def _route_create_repo(self) -> None:
        self._token(required=True)
        payload = self.body_json()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}; expected one of {REPO_TYPES}")
        name, namespace = payload.get("name") or "", payload.get("organization") or self.state.user
        for part in (namespace, name):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", part) or "--" in part or ".." in part:
                raise HubError(400, f"Invalid repo id {namespace}/{name}: use letters, digits, '-', '_', '.'")
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
        sdk = payload.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:  # as the Hub: a Space needs an SDK
            raise HubError(400, f"Invalid Space SDK {sdk!r}; expected one of {SPACE_SDKS}")
        with self.state.lock:
            existing = self.state.repos.get((repo_type, repo_id))
            if existing is not None:
                # The Hub's 409 carries the repo's url: `create_repo(exist_ok=True)` reads it.
                url = self._url(existing)
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", extra={"url": url})
            repo = self.state.create_repo(repo_type, repo_id, private, sdk if repo_type == "space" else None)
        self._json({"url": self._url(repo), "name": repo_id, "id": repo_id})

    def _route_delete_repo(self) -> None:
        self._token(required=True)
        payload = self.body_json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.state.user}/{payload.get('name')}"
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, "token")
            del self.state.repos[(repo_type, repo_id)]
            shutil.rmtree(self.state.repo_dir(repo), ignore_errors=True)
        self._json({})

    def _route_repo_info(self, repo_type: str, repo_id: str, revision: str, query: dict[str, str]) -> None:
        token = self._token()
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, token)
            sha = repo.resolve(revision)
            commit = repo.commits[sha]
            blobs = query.get("blobs", "").lower() in ("1", "true")
            siblings = []
            for path, entry in sorted(commit["tree"].items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry["size"], blobId=entry["oid"])
                    if entry.get("lfs"):
                        lfs = entry["lfs"]
                        sibling["lfs"] = {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": sha,
                "lastModified": commit["date"],
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(e["size"] for e in commit["tree"].values()),
            }
            if repo_type == "model":
                info["modelId"] = repo_id
            if repo_type == "space":
                info["sdk"] = repo.sdk
        self._json(info)

    def _route_refs(self, repo_type: str, repo_id: str, query: dict[str, str]) -> None:
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, self._token())

            def refs(names: dict[str, str], prefix: str) -> list[dict[str, str]]:
                return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": c} for n, c in sorted(names.items())]

            payload = {
                "branches": refs(repo.branches, "refs/heads/"),
                "converts": [],
                "tags": refs(repo.tags, "refs/tags/"),
            }
            if query.get("include_prs"):
                payload["pullRequests"] = refs(repo.pulls, "refs/pr/")
        self._json(payload)

    def _route_commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, self._token())
            sha: str | None = repo.resolve(revision)
            history = []
            while sha is not None:
                commit = repo.commits[sha]
                history.append(
                    {
                        "id": sha,
                        "authors": [{"user": self.state.user}],
                        "date": commit["date"],
                        "title": commit["title"],
                        "message": commit["message"],
                    }
                )
                sha = commit["parent"]
        self._json(history)

    def _route_branch(self, method: str, repo_type: str, repo_id: str, branch: str) -> None:
        self._token(required=True)
        payload = self.body_json() if method == "POST" else {}
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, "token")
            if method == "DELETE":
                if branch not in repo.branches or branch == "main":
                    raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch!r}")
                del repo.branches[branch]
            else:
                if branch.startswith("refs/") or not branch:
                    raise HubError(400, f"Invalid branch name {branch!r}")
                if branch in repo.branches:
                    raise HubError(409, f"Branch {branch!r} already exists")
                repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main")
            self.state.save(repo)
        self._json({})

    def _route_tag(self, method: str, repo_type: str, repo_id: str, revision: str) -> None:
        self._token(required=True)
        payload = self.body_json() if method == "POST" else {}
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, "token")
            if method == "DELETE":
                if revision not in repo.tags:
                    raise HubError(404, f"Tag {revision!r} not found", "RevisionNotFound")
                del repo.tags[revision]
            else:
                tag = payload.get("tag") or ""
                if not tag or tag.startswith("refs/"):
                    raise HubError(400, f"Invalid tag name {tag!r}")
                if tag in repo.tags:
                    raise HubError(409, f"Tag {tag!r} already exists")
                repo.tags[tag] = repo.resolve(revision)
            self.state.save(repo)
        self._json({})

    # Tree ---------------------------------------------------------------------------------------------------------
    def _route_tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict[str, str]) -> None:
        recursive = query.get("recursive", "").lower() in ("1", "true")
        expand = query.get("expand", "").lower() in ("1", "true")
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, self._token())
            sha = repo.resolve(revision)
            tree = repo.commits[sha]["tree"]
            path = path.strip("/")
            folders = _folders(tree)
            if path and path not in folders:
                raise HubError(404, f"Folder {path!r} not found at {revision}", "EntryNotFound", {"X-Repo-Commit": sha})
            prefix = path + "/" if path else ""

            def wanted(p: str) -> bool:
                return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

            out = [
                _folder_json(f, tree, sha, repo.commits[sha] if expand else None) for f in sorted(folders) if wanted(f)
            ]
            out += [
                _entry_json(p, e, repo.commits[e["commit"]] if expand else None)
                for p, e in sorted(tree.items())
                if wanted(p)
            ]
        # Pages of `page_size` entries linked by a `Link: <...>; rel="next"` header, as the Hub paginates (1000).
        cursor, size = int(query.get("cursor") or 0), self.state.page_size
        headers = {}
        if cursor + size < len(out):
            next_query = urlencode({**query, "cursor": cursor + size})
            headers["Link"] = f'<{self.server.url}{urlsplit(self.path).path}?{next_query}>; rel="next"'
        self._json(out[cursor : cursor + size], headers=headers)

    def _route_paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        body = self.body()
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = json.loads(body or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[-1].lower() in ("1", "true")
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, self._token())
            sha = repo.resolve(revision)
            tree = repo.commits[sha]["tree"]
            folders = _folders(tree)
            out = []
            for path in paths:
                path = path.strip("/")
                if path in tree:
                    entry = tree[path]
                    out.append(_entry_json(path, entry, repo.commits[entry["commit"]] if expand else None))
                elif path in folders:
                    out.append(_folder_json(path, tree, sha, repo.commits[sha] if expand else None))
        self._json(out)

    # Downloads ----------------------------------------------------------------------------------------------------
    def _route_resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, self._token())
            sha = repo.resolve(revision)
            entry = repo.commits[sha]["tree"].get(path)
            if entry is None:
                raise HubError(404, f"Entry not found: {path} at {revision}", "EntryNotFound", {"X-Repo-Commit": sha})
            file = self.state.file_path(repo, entry)
        size = entry["size"]
        etag = entry["lfs"]["oid"] if entry.get("lfs") else entry["oid"]
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": sha,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        if entry.get("lfs"):
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(size)})
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        if range_header and size:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or (not match[1] and not match[2]):
                raise HubError(416, f"Unsupported range {range_header!r}")
            if match[1]:
                start, end = int(match[1]), min(int(match[2]) if match[2] else size - 1, size - 1)
            else:
                start = max(size - int(match[2]), 0)
            if start >= size and size > 0:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(end - start + 1, 0)
        headers["Content-Length"] = str(length)
        self._send_headers(status, headers)
        if method == "GET" and length:
            with open(file, "rb") as handle:
                handle.seek(start)
                remaining = length
                while remaining:
                    chunk = handle.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    # Uploads ------------------------------------------------------------------------------------------------------
    def _route_preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        token = self._token(required=True)
        payload = self.body_json()
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, token)
            try:
                tree = repo.commits[repo.resolve(revision)]["tree"]
            except HubError:
                tree = {}  # a branch that does not exist yet: nothing to compare against
        files = []
        for item in payload.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            mode = "lfs" if _is_lfs(item["path"], int(item.get("size", 0)), sample) else "regular"
            remote = tree.get(item["path"])
            oid = None
            if remote is not None:
                oid = remote["lfs"]["oid"] if remote.get("lfs") else remote["oid"]
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": files, "commitOid": None})

    def _route_commit(self, repo_type: str, repo_id: str, revision: str, create_pr: bool) -> None:
        token = self._token(required=True)
        lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line.get("key") == "header"), {})
        with self.state.lock:
            repo = self.state.get_repo(repo_type, repo_id, token)
            pr = RE_PR.fullmatch(revision)
            if not create_pr and not pr and revision not in repo.branches:
                raise HubError(
                    404, f"Invalid rev id: {revision} (commits go to a branch or a refs/pr/N ref)", "RevisionNotFound"
                )
            parent = repo.resolve(revision)
            if header.get("parentCommit") and header["parentCommit"] != parent and not create_pr:
                raise HubError(412, f"A commit has happened since {header['parentCommit']}; parent is {parent}")
            tree = dict(repo.commits[parent]["tree"])
            for line in lines:
                self._apply_operation(repo, tree, line.get("key"), line.get("value") or {})
            sha = self.state.add_commit(
                repo, parent, tree, header.get("summary") or "Commit", header.get("description") or ""
            )
            payload: dict[str, Any] = {
                "commitUrl": f"{self._url(repo)}/commit/{sha}",
                "commitOid": sha,
                "success": True,
            }
            if create_pr:
                number = str(max((int(n) for n in repo.pulls), default=0) + 1)
                repo.pulls[number] = sha
                payload["pullRequestUrl"] = f"{self._url(repo)}/discussions/{number}"
            elif pr:
                repo.pulls[pr[1]] = sha
            else:
                repo.branches[revision] = sha
            self.state.save(repo)
        self._json(payload)

    def _apply_operation(self, repo: Repo, tree: dict[str, Any], key: str | None, value: dict[str, Any]) -> None:
        path = (value.get("path") or "").strip("/")
        if key == "header":
            return
        if not path or ".." in path.split("/"):
            raise HubError(400, f"Invalid path in commit: {path!r}")
        if key == "file":
            try:
                data = base64.b64decode(value.get("content", ""), validate=True)
            except binascii.Error as err:
                raise HubError(400, f"Invalid base64 content for {path}") from err
            tree[path] = {"oid": self.state.write_blob(repo, data), "size": len(data), "lfs": None}
        elif key == "lfsFile":
            oid = value.get("oid", "")
            stored = self.state.lfs_path(oid)
            if not stored.exists():
                raise HubError(422, f"LFS object {oid} for {path} was never uploaded (use the LFS batch API first)")
            size = stored.stat().st_size
            if value.get("size") is not None and int(value["size"]) != size:
                raise HubError(422, f"LFS object {oid} has {size} bytes, commit says {value['size']}")
            pointer = LFS_POINTER.format(oid=oid, size=size).encode()
            lfs = {"oid": oid, "size": size, "pointerSize": len(pointer)}
            tree[path] = {"oid": git_blob_oid(pointer), "size": size, "lfs": lfs}
        elif key == "deletedFile":
            if path not in tree:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del tree[path]
        elif key == "deletedFolder":
            doomed = [p for p in tree if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del tree[p]
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")

    def _route_lfs_batch(self, repo_type: str, repo_id: str) -> None:
        token = self._token(required=True)
        payload = self.body_json()
        with self.state.lock:
            self.state.get_repo(repo_type, repo_id, token)
        if payload.get("operation") != "upload":
            raise HubError(400, "This test Hub serves LFS downloads through /resolve/, not the batch API")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(422, "Only the 'basic' LFS transfer is served here")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid", ""), int(obj.get("size", 0))
            stored = self.state.lfs_path(oid)
            out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not (stored.exists() and stored.stat().st_size == size):
                base = f"{self.server.url}/_lfs"
                out["actions"] = {
                    "upload": {"href": f"{base}/upload/{oid}", "header": {}},
                    "verify": {"href": f"{base}/verify/{oid}", "header": {}},
                }
            objects.append(out)
        self._json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _route_lfs_object(self, method: str, action: str, oid: str) -> None:
        stored = self.state.lfs_path(oid)
        if action == "upload" and method == "PUT":
            data = self.body()
            if hashlib.sha256(data).hexdigest() != oid:
                raise HubError(400, f"Uploaded content does not match sha256 {oid}")
            stored.parent.mkdir(parents=True, exist_ok=True)
            tmp = stored.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(stored)
            return self._send(200, b"", {"ETag": f'"{oid}"'})
        if action == "verify" and method == "POST":
            self._token(required=True)
            payload = self.body_json()
            if not stored.exists() or stored.stat().st_size != int(payload.get("size", -1)):
                raise HubError(404, f"LFS object {oid} not found or of the wrong size")
            return self._json({"success": True})
        self._unknown(method)


class HubHTTPServer(ThreadingHTTPServer):
    """The HTTP server; ``state`` holds the repos, ``url`` is the base URL to put in ``HF_ENDPOINT``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: HubState):
        super().__init__(address, HubRequestHandler)
        self.state = state
        host, port = self.server_address[:2]
        self.url = f"http://{host}:{port}"


class HubServer:
    """A running test Hub: ``url`` for ``HF_ENDPOINT``, ``state`` for inspection, ``stop()`` (or ``with``)."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, tokens: Iterable[str] = DEFAULT_TOKENS):
        self.state = HubState(Path(root), tokens)
        self.httpd = HubHTTPServer((host, port), self.state)
        self.url = self.httpd.url
        self.token = next(iter(self.state.tokens))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        logger.info("test Hub serving %s from %s", self.url, root)

    def stop(self) -> None:
        """Stop serving and close the socket (repos stay on disk)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def new_repo_id(self, name: str = "repo", namespace: str | None = None) -> str:
        """A repo id no test has used yet on this server, e.g. ``test-user/test_push-3f2a9c01``."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "repo"
        return f"{namespace or self.state.user}/{name}-{uuid.uuid4().hex[:8]}"

    def __repr__(self) -> str:
        return f"HubServer(url={self.url!r}, root={str(self.state.root)!r})"


def start_hub_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> HubServer:
    """Start a test Hub in a background thread, storing repos under ``root``.

    Args:
        root: Folder for repos and LFS objects (created if missing; existing repos are loaded).
        host: Interface to bind; keep 127.0.0.1 so nothing outside the machine can reach it.
        port: TCP port; 0 picks a free one (read it from ``.url``).

    Returns:
        The running server; stop it with ``.stop()`` or use it as a context manager.
    """
    return HubServer(Path(root), host, port)


def main(argv: list[str] | None = None) -> None:
    """Serve a test Hub in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder holding the repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    server = start_hub_server(args.root, args.host, args.port)
    logger.info("export HF_ENDPOINT=%s HF_TOKEN=%s HF_HUB_DISABLE_XET=1", server.url, server.token)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
