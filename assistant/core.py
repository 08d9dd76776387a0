"""The one place Haven's objects are built: folders, settings, the conversation store, the model registry,
the safety policy and chat sessions, and the one mapping from settings to the engine's
:class:`SamplingParams` and :class:`LoadOptions`. ``haven-cli``, the desktop app and the benchmark all
start here, so a new setting is wired in one place.

Building is separate from showing: warnings (a corrupt settings file replaced, a guard model that cannot
be used) are collected in :attr:`Core.warnings` and each front end shows them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.engine import Engine, LoadOptions, ModelInfo, SamplingParams
from assistant.models import ModelRegistry
from assistant.paths import AppPaths
from assistant.remote import RemoteEngine, RemoteRegistry, open_engine, split_model_id
from assistant.safety import SafetyPolicy
from assistant.safety.factory import build_policy
from assistant.session import ChatSession
from assistant.settings import Settings, load_settings
from assistant.store import Store

__all__ = ["Core", "load_options", "sampling_params"]


def sampling_params(settings: Settings, *, temperature: float | None = None, max_tokens: int | None = None,
                    seed: int | None = None) -> SamplingParams:
    """The generation settings a turn uses; the arguments override the saved settings for one turn."""
    return SamplingParams(
        temperature=settings.temperature if temperature is None else temperature,
        top_p=settings.top_p, top_k=settings.top_k, min_p=settings.min_p, repeat_penalty=settings.repeat_penalty,
        max_tokens=settings.max_tokens if max_tokens is None else max_tokens, seed=seed,
    )


def load_options(settings: Settings, chat_format: str | None = None) -> LoadOptions:
    """How the chat model is loaded: its context, threads and GPU offload from the settings."""
    return LoadOptions(context_length=settings.context_length, threads=settings.threads,
                       gpu_layers=settings.gpu_layers, chat_format=chat_format)


@dataclass
class Core:
    """The long-lived objects of one Haven process, built from the environment (``HAVEN_HOME`` or the
    platform's folders). ``settings`` may be replaced while the app runs (the Settings dialog)."""

    paths: AppPaths
    settings: Settings
    store: Store
    registry: ModelRegistry
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(cls) -> Core:
        paths = AppPaths.from_environment().ensure()
        loaded = load_settings(paths.settings_file)
        return cls(paths, loaded.settings, Store(paths.database_file), ModelRegistry(paths), list(loaded.warnings))

    def close(self) -> None:
        self.store.close()

    def take_warnings(self) -> list[str]:
        """The warnings not shown yet, for the front end to show once."""
        taken, self.warnings[:] = list(self.warnings), []
        return taken

    def safety_policy(self) -> SafetyPolicy:
        """The safety policy the settings ask for; what it could not honour is added to :attr:`warnings`."""
        return build_policy(self.paths, self.settings, self.registry, self.warnings)

    def load_options(self, chat_format: str | None = None) -> LoadOptions:
        return load_options(self.settings, chat_format)

    def sampling(self, *, temperature: float | None = None, max_tokens: int | None = None,
                 seed: int | None = None) -> SamplingParams:
        return sampling_params(self.settings, temperature=temperature, max_tokens=max_tokens, seed=seed)

    def remotes(self) -> RemoteRegistry:
        """The servers the user added (``haven-cli remote``); their models' ids are ``NAME:MODEL``."""
        return RemoteRegistry(self.paths)

    def is_remote(self, model_id: str) -> bool:
        """Whether ``model_id`` names a model on an added server (an installed model of that id wins)."""
        parts = split_model_id(model_id)
        return (parts is not None and self.registry.find(model_id) is None
                and self.remotes().find(parts[0]) is not None)

    def open_remote_session(self, model_id: str) -> tuple[ChatSession, RemoteEngine]:
        """A chat session on the remote model ``NAME:MODEL``, with the same safety policy as a local one;
        the caller closes the engine."""
        engine = open_engine(self.remotes(), model_id, default_context=self.settings.context_length)
        session = ChatSession(engine, self.store, self.safety_policy(), model_id=model_id,
                              sampling=self.sampling(), user_instructions=self.settings.user_instructions)
        return session, engine

    def open_session(self, model_id: str, engine: Engine) -> tuple[ChatSession, ModelInfo]:
        """Load ``model_id`` into ``engine`` and return a chat session on it, with the safety policy."""
        model = self.registry.get(model_id)
        info = engine.load(model.path, self.load_options(model.chat_format))
        session = ChatSession(engine, self.store, self.safety_policy(), model_id=model_id,
                              sampling=self.sampling(), user_instructions=self.settings.user_instructions)
        return session, info
