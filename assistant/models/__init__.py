"""Model files: what can be installed (``catalog``), what is (``registry``, ``listing``), reading their
headers (``gguf``), getting them safely (``download``, ``queue``, ``credentials``), and whether they fit
this computer (``fit``, the one memory estimate)."""

from assistant.models.catalog import Catalog, CatalogEntry, load_catalog, recommend
from assistant.models.credentials import TokenStore
from assistant.models.download import (
    DiskFullError,
    Downloader,
    DownloadError,
    DownloadProgress,
    DownloadResult,
    DownloadSpec,
    DownloadState,
)
from assistant.models.fit import Fit, ModelShape, fit_for, memory_needed
from assistant.models.gguf import GgufInfo, read_gguf
from assistant.models.listing import ModelRow, model_rows
from assistant.models.queue import DownloadQueue, JobSnapshot
from assistant.models.registry import (
    STARTER_MODEL_ID,
    InstalledModel,
    ModelRecord,
    ModelRegistry,
    find_starter_model,
    sanitize_id,
)

__all__ = [
    "STARTER_MODEL_ID", "Catalog", "CatalogEntry", "DiskFullError", "DownloadError", "DownloadProgress",
    "DownloadQueue", "DownloadResult", "DownloadSpec", "DownloadState", "Downloader", "Fit", "GgufInfo",
    "InstalledModel", "JobSnapshot", "ModelRecord", "ModelRegistry", "ModelRow", "ModelShape", "TokenStore",
    "find_starter_model", "fit_for", "load_catalog", "memory_needed", "model_rows", "read_gguf", "recommend",
    "sanitize_id",
]
