"""``haven-cli models ...`` and ``haven-cli hf-token ...``: the catalog, downloads, imports, the token."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from assistant.errors import ModelError, UsageError
from assistant.hardware import detect_hardware
from assistant.models.catalog import load_catalog, recommend_by_use
from assistant.models.catalog_refresh import RefreshError
from assistant.models.credentials import TokenStore
from assistant.models.download import Downloader, DownloadProgress, DownloadSpec, DownloadState
from assistant.models.listing import model_rows
from assistant.models.registry import STARTER_MODEL_ID
from assistant.models.search import HubSearch, SearchSort, model_id_for, parse_query
from assistant.settings import save_settings

if TYPE_CHECKING:
    from assistant.core import Core

__all__ = ["add_model_commands"]

EXIT_CANCELLED = 130
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
FIT_WORDS = {"yes": "fits", "tight": "tight", "no": "won't fit"}


def _gib(count: int) -> str:
    return f"{count / 1024**3:.1f} GiB"


def cmd_list(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    from assistant.engine import gpu_offload_supported  # loads llama.cpp: only when listing
    from assistant.engine.native import gpu_infos

    hardware = detect_hardware(gpu_infos())  # the GPUs llama.cpp can use, with their own memory
    offload = gpu_offload_supported() and core.settings.gpu_layers != 0
    rows = model_rows(load_catalog(), core.registry, hardware, context_length=core.settings.context_length,
                      default_id=core.registry.default_id(core.settings.default_model), gpu_offload=offload)
    remote = _remote_rows(core)
    if args.json:
        out.write(json.dumps([{**r.to_json(), "kind": "local"} for r in rows] + remote, indent=2) + "\n")
        return 0
    out.write(f"This computer: {hardware.describe()}; GPU offload {'available' if offload else 'not available'}\n\n")
    for r in rows:
        marks = ("*" if r.default else " ") + ("+" if r.installed else " ")
        extra = "  recommended" if r.recommended else ""
        out.write(f"{marks} {r.id:28s} {_gib(r.size_bytes):>9s}  needs {_gib(r.ram_required_bytes):>8s}  "
                  f"{FIT_WORDS[r.fits.value]:9s} {r.license}{extra}\n")
    for item in remote:
        out.write(f"   {item['id']!s:28s} on {item['server']} ({item['url']})\n")
    out.write("\n* default   + installed\n")
    return 0


def _remote_rows(core: Core) -> list[dict[str, object]]:
    """The models of the servers added with ``haven-cli remote add``, as listed when each was added (no
    server is contacted here). The local rows' fields, with ``"kind": "remote"`` and the server."""
    default = core.settings.default_model
    return [
        {"id": model_id, "name": model_id.split(":", 1)[1], "kind": "remote", "installed": True,
         "default": model_id == default, "path": None, "size_bytes": 0, "sha256": None, "ram_required_bytes": 0,
         "fits": "yes", "license": "", "tags": ["remote"], "server": server.name, "url": server.url}
        for server in core.remotes().servers() for model_id in server.model_ids()
    ]


def _spec(core: Core, args: argparse.Namespace) -> DownloadSpec:
    if args.repo or args.file:
        if not (args.repo and args.file) or args.id:
            raise UsageError("Give a catalog id, or both --repo OWNER/NAME and --file FILE.gguf.")
        if (not args.file.endswith(".gguf") or args.file.startswith("/") or "\\" in args.file
                or any(part in ("", ".", "..") for part in args.file.split("/"))):
            raise UsageError("--file must be the path of a .gguf file in the repository.")
        if not _REPO.match(args.repo) or ".." in args.repo or "--" in args.repo:
            raise UsageError("--repo must be OWNER/NAME as on the hub (letters, digits, '.', '_' and '-').")
        return DownloadSpec(model_id=model_id_for(args.file), repo=args.repo, file=args.file,
                            revision=args.revision or "main", endpoint=args.endpoint)
    if not args.id:
        raise UsageError("Give a catalog id (see `haven-cli models list`) or --repo and --file.")
    entry = load_catalog().get(args.id)
    if entry is None:
        raise ModelError(f"{args.id!r} is not in Haven's catalog. `haven-cli models list` shows what is.")
    return DownloadSpec.from_catalog(entry, revision=args.revision, endpoint=args.endpoint)


class _ProgressLine:
    """Progress on stderr: one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.last = 0.0
        self.message = ""

    def __call__(self, p: DownloadProgress) -> None:
        if p.message and p.message != self.message:
            self.message = p.message
            self.err.write(("\n" if self.tty else "") + p.message + "\n")
        now = time.monotonic()
        if p.state is DownloadState.DOWNLOADING and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        total = f" of {p.total / 1e6:,.1f} MB" if p.total else ""
        share = f" ({100 * p.downloaded / p.total:.0f}%)" if p.total else ""
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        line = f"{p.state.value}: {p.downloaded / 1e6:,.1f} MB{total}{share}, {p.bytes_per_second / 1e6:.1f} MB/s{left}"
        self.err.write(("\r" + line.ljust(79)) if self.tty else line + "\n")
        self.err.flush()


def cmd_download(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    spec = _spec(core, args)
    if core.registry.find(spec.model_id) is not None:
        out.write(f"{spec.model_id} is already installed.\n")
        return 0
    downloader = Downloader(core.paths, core.registry, token=TokenStore(core.paths).get())
    stop = threading.Event()
    report = _ProgressLine(sys.stderr)
    print(f"Downloading {spec.repo}/{spec.file} as {spec.model_id}", file=sys.stderr)
    try:
        result = downloader.download(spec, progress=report, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        print("\nPaused. Run the same command again to continue where it stopped.", file=sys.stderr)
        return EXIT_CANCELLED
    if report.tty:
        sys.stderr.write("\n")
    if result.state is not DownloadState.COMPLETED:
        return EXIT_CANCELLED
    if result.already_installed:  # another Haven download finished it while this one waited
        print(f"{spec.model_id} is installed: another Haven download finished it (sha256 {result.sha256} "
              "verified).", file=sys.stderr)
    else:
        print(f"Installed {spec.model_id} (sha256 {result.sha256} verified).", file=sys.stderr)
    out.write(f"{spec.model_id}\n")
    return 0


def cmd_import(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    model = core.registry.import_file(Path(args.path), args.name)
    out.write(f"{model.id}\n")
    return 0


def cmd_remove(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    model = core.registry.get(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("Removing a model needs confirmation: add --yes.")
        what = "forget this imported model (its file stays)" if model.imported else f"delete {model.path}"
        if input(f"Really {what}? [y/N] ").strip().lower() not in ("y", "yes"):
            out.write("Nothing removed.\n")
            return 0
    core.registry.remove(args.id)
    if core.settings.default_model == args.id:
        save_settings(core.paths.settings_file, core.settings.replace(default_model=None))
    out.write(f"Removed {args.id}.\n")
    return 0


def cmd_default(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    core.registry.get(args.id)  # must be installed
    save_settings(core.paths.settings_file, core.settings.replace(
        default_model=None if args.id == STARTER_MODEL_ID else args.id))
    out.write(f"{args.id} is now the default model.\n")
    return 0


def cmd_token(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    store = TokenStore(core.paths)
    if args.action == "clear":
        store.clear()
        out.write("The Hugging Face token was removed.\n")
    elif args.action == "status":
        out.write(("A Hugging Face token is saved in " + store.where() + ".\n") if store.get()
                  else "No Hugging Face token is saved.\n")
    else:
        token = getpass.getpass("Hugging Face token: ") if sys.stdin.isatty() else sys.stdin.readline()
        out.write(f"Saved the token in {store.set(token)}.\n")
    return 0


def _hardware_and_offload(core: Core) -> tuple[Any, bool]:
    from assistant.engine import gpu_offload_supported  # loads llama.cpp: only for fit labels
    from assistant.engine.native import gpu_infos

    return detect_hardware(gpu_infos()), gpu_offload_supported() and core.settings.gpu_layers != 0


def cmd_search(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    from assistant.models.templates import template_problem

    if args.limit < 1 or args.limit > 100:
        raise UsageError("--limit must be between 1 and 100.")
    search = HubSearch(core.paths.cache_dir, TokenStore(core.paths).get, args.endpoint,
                       template_check=template_problem)
    repos = search.search(args.query, sort=SearchSort(args.sort), limit=args.limit)
    if len(repos) == 1 and parse_query(args.query).repo is not None:
        search.check_access(repos[0])  # a gated repository this token cannot open: a sentence, exit 1
    hardware, offload = _hardware_and_offload(core)
    repos = search.label(repos, hardware, core.settings.context_length, gpu_offload=offload)
    if args.json:
        out.write(json.dumps([r.to_json() for r in repos], indent=2) + "\n")
        return 0
    if not repos:
        out.write(f"No GGUF models on the hub match {args.query!r}.\n")
        return 0
    out.write(f"This computer: {hardware.describe()}\n")
    for repo in repos:
        flags = ("  gated" if repo.gated else "") + (f"  licence: {repo.license}" if repo.license else "")
        out.write(f"\n{repo.repo}  ({repo.downloads:,} downloads, {repo.likes:,} likes){flags}\n")
        if repo.template_note:
            out.write(f"  {repo.template_note}\n")
        for quant, files in repo.quant_groups().items():
            for f in files:
                mark = "  recommended" if f.recommended else ""
                parts = f"  ({len(f.parts)} parts)" if len(f.parts) > 1 else ""
                fit = FIT_WORDS[f.fits.value]
                out.write(f"  {quant:9s} {_gib(f.size_bytes):>9s}  {fit:9s} {f.file}{parts}{mark}\n")
    out.write("\nDownload one with: haven-cli models download --repo OWNER/NAME --file FILE\n")
    return 0


def cmd_recommend(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    hardware, offload = _hardware_and_offload(core)
    picks = recommend_by_use(load_catalog().chat_models(), hardware, core.settings.context_length,
                             gpu_offload=offload)
    if args.json:
        out.write(json.dumps({use.value: (e.id if e else None) for use, e in picks.items()}, indent=2) + "\n")
        return 0
    out.write(f"This computer: {hardware.describe()}\n")
    for use, entry in picks.items():
        out.write(f"{use.label:15s} {entry.id + '  ' + entry.name if entry else 'nothing in the catalog fits'}\n")
    return 0


def cmd_catalog(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    from assistant.models.catalog_refresh import CatalogSource, current_catalog_path, refresh_catalog

    if args.action == "status":
        path = current_catalog_path(core.paths)
        out.write(f"Catalog in use: {path} ({len(load_catalog(path).entries)} models).\n")
        return 0
    try:
        result = refresh_catalog(core.paths, CatalogSource.bundled())
    except RefreshError as exc:
        raise ModelError(str(exc)) from exc
    word = "updated to" if result.changed else "already the current"
    out.write(f"The catalog is {word} version {result.version} ({len(result.catalog.entries)} models).\n")
    return 0


def add_model_commands(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    models = commands.add_parser("models", parents=[common], help="the catalog and installed models")
    sub = models.add_subparsers(dest="models_command", required=True, parser_class=parser_class)
    listing = sub.add_parser("list", parents=[common], help="catalog and installed models, with fit labels")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    download = sub.add_parser("download", parents=[common], help="download and verify a model")
    download.add_argument("id", nargs="?", help="a catalog id")
    download.add_argument("--repo", metavar="OWNER/NAME")
    download.add_argument("--file", metavar="FILE.gguf")
    download.add_argument("--revision", metavar="REV")
    download.add_argument("--endpoint", metavar="URL", help="the hub's address (default: HF_ENDPOINT or the hub)")
    download.set_defaults(handler=cmd_download)

    imp = sub.add_parser("import", parents=[common], help="use a GGUF file already on disk")
    imp.add_argument("path")
    imp.add_argument("--name")
    imp.set_defaults(handler=cmd_import)

    remove = sub.add_parser("remove", parents=[common], help="delete a downloaded model or forget an import")
    remove.add_argument("id")
    remove.add_argument("--yes", action="store_true")
    remove.set_defaults(handler=cmd_remove)

    default = sub.add_parser("default", parents=[common], help="choose the default model")
    default.add_argument("id")
    default.set_defaults(handler=cmd_default)

    search = sub.add_parser("search", parents=[common], help="search the hub for GGUF models, with fit labels")
    search.add_argument("query", help="a keyword, OWNER/NAME, or a Hugging Face URL")
    search.add_argument("--json", action="store_true")
    search.add_argument("--endpoint", metavar="URL", help="the hub's address (default: HF_ENDPOINT or the hub)")
    search.add_argument("--limit", type=int, default=10, metavar="N", help="at most N repositories (default 10)")
    search.add_argument("--sort", choices=[s.value for s in SearchSort], default=SearchSort.DOWNLOADS.value)
    search.set_defaults(handler=cmd_search)

    rec = sub.add_parser("recommend", parents=[common], help="the best catalog model per use for this computer")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=cmd_recommend)

    catalog = sub.add_parser("catalog", parents=[common], help="the curated catalog: status, or refresh it")
    catalog.add_argument("action", choices=["status", "refresh"])
    catalog.set_defaults(handler=cmd_catalog)

    token = commands.add_parser("hf-token", parents=[common], help="the Hugging Face token for gated models")
    token.add_argument("action", choices=["set", "clear", "status"])
    token.set_defaults(handler=cmd_token)
