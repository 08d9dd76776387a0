"""Finding GGUF models on the Hugging Face hub: search, every quantization with its size, checksum and fit.

Everything comes from huggingface_hub's API (``HfApi.list_models`` for a keyword, ``HfApi.model_info`` with
``files_metadata=True`` for a repository's files with their LFS sha256), pointed at ``--endpoint`` /
``HF_ENDPOINT`` like downloads. The only extra request is a ranged read of the first 2 MiB of one file per
repository: the model's own GGUF header (layers, key/value heads, head size, trained context), so the
fit label is Haven's exact estimate (:mod:`assistant.models.fit`) rather than a guess from the file size;
when that read fails the file size alone is used.

What the hub says (the "facts") is cached on disk for :data:`CACHE_SECONDS`; the fit labels are worked out
for this computer on every call, from the facts.

Errors are :class:`SearchError` sentences; a gated repository the token cannot open is
:class:`GatedError`, which carries the page where its licence is accepted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from assistant.errors import HavenError
from assistant.hardware import HardwareInfo
from assistant.models.fit import Fit, ModelShape, fit_for, memory_needed
from assistant.models.gguf import read_gguf_prefix
from assistant.models.hub_logging import route_hub_logging
from assistant.models.registry import sanitize_id
from assistant.models.splits import part_name, split_name

__all__ = [
    "GatedError", "HubFile", "HubRepo", "HubSearch", "Query", "SearchError", "SearchSort", "model_id_for",
    "parse_query", "quant_of",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
CACHE_SECONDS = 600.0
OFFLINE_PROBE_SECONDS = 5.0    # a connection that takes longer than this to open is as good as none
HEADER_BYTES = 2 * 1024 * 1024
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_QUANT = re.compile(r"(?i)(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9A-Z]{1,3}){0,3}|BF16|F16|F32|FP16)(?![A-Za-z0-9])")
# Haven's preference among the files that fit comfortably: the quality/speed balance first.
PREFERRED_QUANTS = ("Q4_K_M", "Q5_K_M", "Q4_K_S", "Q6_K", "Q5_K_S", "IQ4_XS", "IQ4_NL", "Q4_0", "Q8_0",
                    "Q3_K_L", "Q3_K_M", "IQ3_M", "Q3_K_S", "IQ3_XS")


class SearchError(HavenError):
    """The search could not be done; the message says why and what to do."""


class GatedError(SearchError):
    def __init__(self, message: str, page: str) -> None:
        super().__init__(message)
        self.page = page


class SearchSort(StrEnum):
    DOWNLOADS = "downloads"
    RECENT = "recent"


@dataclass(frozen=True, slots=True)
class Query:
    repo: str | None     # an exact repository (typed as OWNER/NAME or pasted as a URL)
    keyword: str | None
    file: str | None = None  # a URL that named one file


def parse_query(text: str) -> Query:
    """A keyword, ``OWNER/NAME``, or a Hugging Face URL (``https://huggingface.co/OWNER/NAME[/blob/REV/FILE]``)."""
    text = text.strip()
    if not text:
        raise SearchError("Type a word to search for, a repository as OWNER/NAME, or paste a Hugging Face link.")
    if re.match(r"(?i)^(https?://|hf\.co/|huggingface\.co/)", text):
        url = urlparse(text if "://" in text else "https://" + text)
        parts = [p for p in url.path.split("/") if p]
        if parts and parts[0] == "models":
            parts = parts[1:]
        repo = "/".join(parts[:2])
        if len(parts) < 2 or not _REPO.match(repo):
            raise SearchError(f"{text} is not a link to a model on Hugging Face (expected …/OWNER/NAME).")
        named = "/".join(parts[4:]) if len(parts) > 4 and parts[2] in ("blob", "resolve") else None
        return Query(repo, None, named if named and named.endswith(".gguf") else None)
    if _REPO.match(text) and ".." not in text:
        return Query(text, None)
    return Query(None, text)


def quant_of(path: str) -> str:
    """The quantization named in a GGUF file name (``Q4_K_M``, ``IQ4_XS``, ``Q8_0``, ``BF16`` ...), else ``other``."""
    base = path.rsplit("/", 1)[-1].removesuffix(".gguf")
    split = split_name(path.rsplit("/", 1)[-1])
    if split is not None:
        base = split.prefix
    found = _QUANT.findall(base)
    return found[-1].upper() if found else "other"


def model_id_for(file: str) -> str:
    """The id of a model downloaded by file name: the name without folders, ``.gguf`` or a split suffix."""
    name = file.rsplit("/", 1)[-1]
    split = split_name(name)
    return sanitize_id(split.prefix if split else name.removesuffix(".gguf"))


@dataclass(frozen=True, slots=True)
class HubFile:
    file: str                           # the path in the repository (the first part of a split model)
    quant: str
    size_bytes: int                     # all parts together
    sha256: str | None                  # the (first part's) LFS sha256
    parts: tuple[str, ...] = ()         # every part, in order (one entry for a single file)
    fits: Fit = Fit.NO
    memory_needed_bytes: int = 0
    recommended: bool = False

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "quant": self.quant, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "fits": self.fits.value, "recommended": self.recommended, "parts": list(self.parts),
                "memory_needed_bytes": self.memory_needed_bytes}


@dataclass(frozen=True, slots=True)
class HubRepo:
    repo: str
    downloads: int
    likes: int
    updated: str | None
    gated: bool
    license: str | None
    revision: str | None
    files: tuple[HubFile, ...] = ()
    architecture: str | None = None
    context_length: int | None = None
    shape: tuple[int, int, int] | None = None   # layers, key/value heads, head size (from the GGUF header)
    chat_template: str | None = None
    template_note: str | None = None             # a sentence when Haven cannot render the chat template
    page: str = ""

    def quant_groups(self) -> dict[str, list[HubFile]]:
        groups: dict[str, list[HubFile]] = {}
        for f in self.files:
            groups.setdefault(f.quant, []).append(f)
        return groups

    @property
    def recommended(self) -> HubFile | None:
        return next((f for f in self.files if f.recommended), None)

    def to_json(self) -> dict[str, object]:
        return {"repo": self.repo, "downloads": self.downloads, "likes": self.likes, "updated": self.updated,
                "gated": self.gated, "license": self.license, "revision": self.revision, "page": self.page,
                "architecture": self.architecture, "context_length": self.context_length,
                "template_note": self.template_note, "files": [f.to_json() for f in self.files]}


def _files_of(siblings: list[Any]) -> list[HubFile]:
    """GGUF model files, split parts gathered into one entry; vision projectors and the like left out."""
    singles: list[HubFile] = []
    sets: dict[tuple[str, int], dict[int, tuple[str, int, str | None]]] = {}
    for s in siblings:
        name = str(s.get("rfilename", ""))
        base = name.rsplit("/", 1)[-1].lower()
        if not name.endswith(".gguf") or "mmproj" in base or ".." in name.split("/") or name.startswith("/"):
            continue
        lfs = s.get("lfs") or {}
        size = int(lfs.get("size") or s.get("size") or 0)
        sha = lfs.get("sha256") if isinstance(lfs.get("sha256"), str) else None
        split = split_name(name)
        if split is None:
            singles.append(HubFile(name, quant_of(name), size, sha, (name,)))
        else:
            sets.setdefault((split.prefix, split.count), {})[split.index] = (name, size, sha)
    for (prefix, count), found in sets.items():
        if sorted(found) != list(range(1, count + 1)):
            continue  # an incomplete set cannot be loaded
        names = tuple(part_name(prefix, i, count) for i in range(1, count + 1))
        singles.append(HubFile(names[0], quant_of(names[0]), sum(found[i][1] for i in found), found[1][2], names))
    return sorted(singles, key=lambda f: (f.size_bytes, f.file))


def _license(info: Any) -> str | None:
    for tag in getattr(info, "tags", None) or []:
        if isinstance(tag, str) and tag.startswith("license:"):
            return tag.removeprefix("license:")
    card = getattr(info, "card_data", None)
    value = card.get("license") if card is not None and hasattr(card, "get") else None
    return str(value) if value else None


@dataclass
class HubSearch:
    """Searches one hub (``endpoint``; None: ``HF_ENDPOINT`` or the public hub) with the stored token."""

    cache_dir: Path | None = None
    token_source: Callable[[], str | None] = field(default=lambda: None)
    endpoint: str | None = None
    timeout_seconds: float = 20.0
    template_check: Callable[[str], str | None] | None = None

    @property
    def base(self) -> str:
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    # -- public --------------------------------------------------------------------------------

    def search(self, text: str, *, sort: SearchSort = SearchSort.DOWNLOADS, limit: int = 10) -> list[HubRepo]:
        """Repositories with GGUF files matching ``text``, with their files (no fit labels yet: see :meth:`label`)."""
        query = parse_query(text)
        if query.repo is not None:
            return [self.repository(query.repo)]
        key = f"search|{query.keyword}|{sort.value}|{limit}"
        cached = self._cached(key)
        if cached is not None:
            return [_repo_from_json(r) for r in cached]
        names = self._list(query.keyword or "", sort, limit)
        with ThreadPoolExecutor(max_workers=4) as pool:
            repos = [r for r in pool.map(self._details_or_none, names) if r is not None and r.files]
        if sort is SearchSort.DOWNLOADS:
            repos.sort(key=lambda r: -r.downloads)
        self._store(key, [_repo_json(r) for r in repos])
        return repos

    def repository(self, repo: str) -> HubRepo:
        cached = self._cached(f"repo|{repo}")
        if cached is not None:
            return _repo_from_json(cached)
        found = self._details(repo)
        self._store(f"repo|{repo}", _repo_json(found))
        return found

    def check_access(self, repo: HubRepo, file: HubFile | None = None) -> None:
        """Raise :class:`GatedError` when ``repo`` is gated and the stored token cannot download its files."""
        if not repo.gated or not repo.files:
            return
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        route_hub_logging()

        target = file or repo.files[0]
        url = hf_hub_url(repo.repo, target.file, revision=repo.revision, endpoint=self.base)
        try:
            get_hf_file_metadata(url, token=self.token_source() or False, timeout=self.timeout_seconds,
                                 endpoint=self.base)
        except Exception as exc:
            raise self._explain(exc, repo.repo) from exc

    def label(self, repos: list[HubRepo], hardware: HardwareInfo, context_length: int,
              *, gpu_offload: bool = False) -> list[HubRepo]:
        """The same repositories with every file's fit for this computer and the recommended file marked."""
        return [self._label_one(r, hardware, context_length, gpu_offload) for r in repos]

    # -- the hub -------------------------------------------------------------------------------

    def _api(self) -> Any:
        from huggingface_hub import HfApi
        route_hub_logging()

        return HfApi(endpoint=self.base, token=self.token_source() or False)

    def _list(self, keyword: str, sort: SearchSort, limit: int) -> list[str]:
        hub_sort = "downloads" if sort is SearchSort.DOWNLOADS else "last_modified"
        self._check_reachable()
        try:
            found = self._api().list_models(search=keyword, filter="gguf", sort=hub_sort, limit=max(1, limit))
            return [m.id for m in found]
        except Exception as exc:
            raise self._explain(exc, None) from exc

    def _check_reachable(self) -> None:
        """huggingface_hub retries a keyword search for about 23 s when no connection opens; one request of
        our own first (through its session, so with the user's proxy settings) says "offline" in seconds."""
        import httpx2
        from huggingface_hub import get_session

        try:
            get_session().head(self.base, timeout=min(self.timeout_seconds, OFFLINE_PROBE_SECONDS))
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise self._explain(exc, None) from exc
        except httpx2.HTTPError:
            pass  # it answered, or failed some other way: the search itself reports what matters

    def _details_or_none(self, repo: str) -> HubRepo | None:
        try:
            return self._details(repo)
        except SearchError as exc:
            log.info("skipping %s in search results: %s", repo, exc)
            return None

    def _details(self, repo: str) -> HubRepo:
        try:
            info = self._api().model_info(repo, files_metadata=True, timeout=self.timeout_seconds)
        except Exception as exc:
            raise self._explain(exc, repo) from exc
        siblings = [{"rfilename": s.rfilename, "size": s.size,
                     "lfs": {"size": s.lfs.size, "sha256": s.lfs.sha256} if s.lfs else None}
                    for s in (info.siblings or [])]
        gguf = info.gguf if isinstance(info.gguf, dict) else {}
        template = gguf.get("chat_template") if isinstance(gguf.get("chat_template"), str) else None
        updated = info.last_modified.isoformat() if info.last_modified else None
        found = HubRepo(
            repo=info.id, downloads=int(info.downloads or 0), likes=int(info.likes or 0), updated=updated,
            gated=bool(info.gated), license=_license(info), revision=info.sha, files=tuple(_files_of(siblings)),
            architecture=gguf.get("architecture") if isinstance(gguf.get("architecture"), str) else None,
            context_length=gguf.get("context_length") if isinstance(gguf.get("context_length"), int) else None,
            chat_template=template, page=f"{self.base}/{info.id}",
        )
        if found.files:
            found = self._with_header(found)
        if found.chat_template and self.template_check is not None:
            found = replace(found, template_note=self.template_check(found.chat_template))
        return found

    def _with_header(self, repo: HubRepo) -> HubRepo:
        """The model's shape and trained context from the first bytes of its smallest file (all quantizations
        of one model share them). A failure is not an error: the fit is then estimated from the file size."""
        from huggingface_hub import get_session, hf_hub_url
        route_hub_logging()
        from huggingface_hub.utils._headers import build_hf_headers

        url = hf_hub_url(repo.repo, repo.files[0].file, revision=repo.revision, endpoint=self.base)
        headers = build_hf_headers(token=self.token_source() or False)
        headers["Range"] = f"bytes=0-{HEADER_BYTES - 1}"
        try:
            response = get_session().get(url, headers=headers, timeout=self.timeout_seconds, follow_redirects=True)
            if response.status_code not in (200, 206):
                return repo
            metadata = read_gguf_prefix(response.content[:HEADER_BYTES])
        except Exception as exc:  # offline, gated, anything: fall back to the file size
            log.info("could not read the GGUF header of %s: %s", repo.repo, exc)
            return repo
        shape = ModelShape.from_gguf_metadata(metadata)
        arch = str(metadata.get("general.architecture", repo.architecture or ""))
        trained = metadata.get(f"{arch}.context_length")
        template = metadata.get("tokenizer.chat_template")
        return replace(
            repo, shape=(shape.layers, shape.kv_heads, shape.head_dim) if shape else None,
            architecture=arch or repo.architecture,
            context_length=trained if isinstance(trained, int) and trained > 0 else repo.context_length,
            chat_template=repo.chat_template or (template if isinstance(template, str) else None))

    def _explain(self, exc: Exception, repo: str | None) -> SearchError:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

        if isinstance(exc, SearchError):
            return exc
        page = f"{self.base}/{repo}" if repo else self.base
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, GatedRepoError) or (repo and status == 403):
            return GatedError(
                f"{repo} is a gated model: its files open only to Hugging Face accounts that accepted its licence. "
                f"Open {page}, accept the licence there, then save your access token (`haven-cli hf-token set`, "
                "or the model manager) and try again.", page)
        if status == 401 and self.token_source():
            return SearchError("Hugging Face refused the saved access token. Check it and save it again with "
                               "`haven-cli hf-token set`.")
        if isinstance(exc, RepositoryNotFoundError):
            return SearchError(f"There is no model {repo} on the hub (or it is private). Check the name.")
        if isinstance(exc, HfHubHTTPError):
            return SearchError(f"The hub answered with an error (HTTP {status}). Try again later.")
        return SearchError(f"Haven cannot reach {self.base} to search ({type(exc).__name__}): this computer seems to "
                           "be offline. Check the connection and try again.")

    # -- fit labels ----------------------------------------------------------------------------

    def _label_one(self, repo: HubRepo, hardware: HardwareInfo, context_length: int, offload: bool) -> HubRepo:
        shape = ModelShape(*repo.shape) if repo.shape else None
        ctx = min(context_length, repo.context_length) if repo.context_length else context_length
        labelled = []
        for f in repo.files:
            need = memory_needed(f.size_bytes, shape, ctx)
            labelled.append(replace(f, fits=fit_for(need, hardware, gpu_offload=offload), memory_needed_bytes=need,
                                    recommended=False))
        best = _pick(labelled)
        return replace(repo, files=tuple(replace(f, recommended=f is best) for f in labelled))

    # -- cache ---------------------------------------------------------------------------------

    def _cache_file(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{self.base}|{bool(self.token_source())}|{key}".encode()).hexdigest()[:32]
        return self.cache_dir / "hub-search" / f"{digest}.json"

    def _cached(self, key: str) -> Any:
        path = self._cache_file(key)
        try:
            if path is None or time.time() - path.stat().st_mtime > CACHE_SECONDS:
                return None
            return json.loads(path.read_text(encoding="utf-8"))["value"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _store(self, key: str, value: Any) -> None:
        path = self._cache_file(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"value": value}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.info("search cache not written: %s", exc)


def _pick(files: list[HubFile]) -> HubFile | None:
    for wanted in (Fit.YES, Fit.TIGHT):
        fitting = [f for f in files if f.fits is wanted]
        for quant in PREFERRED_QUANTS:
            match = next((f for f in fitting if f.quant == quant), None)
            if match is not None:
                return match
    return None


def _repo_json(repo: HubRepo) -> dict[str, Any]:
    return asdict(repo)


def _repo_from_json(raw: dict[str, Any]) -> HubRepo:
    files = tuple(HubFile(**{**f, "parts": tuple(f["parts"]), "fits": Fit(f["fits"])}) for f in raw["files"])
    shape = tuple(raw["shape"]) if raw.get("shape") else None
    return HubRepo(**{**raw, "files": files, "shape": shape})
