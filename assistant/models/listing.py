"""The model list a user chooses from: the catalog and what is installed, with fit labels for this machine.

Shared by ``haven-cli models list`` and the desktop model manager.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.errors import HavenError
from assistant.hardware import HardwareInfo
from assistant.models.catalog import Catalog, CatalogEntry, recommend
from assistant.models.fit import Fit, ModelShape, fit_for, memory_needed
from assistant.models.gguf import read_gguf
from assistant.models.registry import InstalledModel, ModelRegistry

__all__ = ["ModelRow", "model_rows"]


@dataclass(frozen=True, slots=True)
class ModelRow:
    id: str
    name: str
    installed: bool
    default: bool
    path: str | None
    size_bytes: int
    sha256: str | None
    ram_required_bytes: int
    fits: Fit
    license: str
    license_url: str
    tags: tuple[str, ...]
    description: str = ""
    parameters: str = ""
    quant: str = ""
    recommended: bool = False
    in_catalog: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "installed": self.installed, "default": self.default,
            "path": self.path, "size_bytes": self.size_bytes, "sha256": self.sha256,
            "ram_required_bytes": self.ram_required_bytes, "fits": self.fits.value, "license": self.license,
            "tags": list(self.tags), "license_url": self.license_url, "description": self.description,
            "parameters": self.parameters, "quant": self.quant, "recommended": self.recommended,
        }


def _installed_need(model: InstalledModel, context_length: int) -> int:
    try:
        header = read_gguf(model.path)
    except HavenError:
        return memory_needed(model.size_bytes, None, context_length)
    trained = header.context_length or context_length
    return memory_needed(model.size_bytes, ModelShape.from_gguf_metadata(header.metadata),
                         min(context_length, trained))


def model_rows(catalog: Catalog, registry: ModelRegistry, hardware: HardwareInfo, *, context_length: int,
               default_id: str, gpu_offload: bool = False) -> list[ModelRow]:
    installed = {m.id: m for m in registry.installed()}
    best: CatalogEntry | None = recommend(catalog.entries, hardware, context_length, gpu_offload=gpu_offload)
    rows: list[ModelRow] = []
    for entry in catalog.entries:
        model = installed.pop(entry.id, None)
        need = entry.memory_needed(context_length)
        rows.append(ModelRow(
            id=entry.id, name=entry.name, installed=model is not None, default=entry.id == default_id,
            path=str(model.path) if model else None, size_bytes=model.size_bytes if model else entry.display_size,
            sha256=(model.sha256 if model and model.sha256 else entry.sha256), ram_required_bytes=need,
            fits=fit_for(need, hardware, gpu_offload=gpu_offload), license=entry.license_name,
            license_url=entry.license_url, tags=entry.tags, description=entry.description,
            parameters=entry.parameters, quant=entry.quant, recommended=best is not None and best.id == entry.id,
            in_catalog=True,
        ))
    for model in installed.values():
        need = _installed_need(model, context_length)
        rows.append(ModelRow(
            id=model.id, name=model.name, installed=True, default=model.id == default_id, path=str(model.path),
            size_bytes=model.size_bytes, sha256=model.sha256, ram_required_bytes=need,
            fits=fit_for(need, hardware, gpu_offload=gpu_offload), license=model.license, license_url="",
            tags=model.tags,
        ))
    return rows
