"""The settings panel: generation, context and hardware, safety, personal instructions, appearance, and the
server (``ui/server_settings.py``)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.errors import HavenError
from assistant.models import TokenStore
from assistant.paths import AppPaths
from assistant.safety import SAFETY_SYSTEM_PROMPT, SafetyLog
from assistant.settings import BOUNDS, GpuOffload, Settings, Theme
from ui.server_settings import ServerPage

__all__ = ["SettingsDialog"]


def _double(name: str, value: float, step: float) -> QDoubleSpinBox:
    low, high = BOUNDS[name]
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    box.setAccessibleName(name.replace("_", " "))
    return box


def _int(name: str, value: int) -> QSpinBox:
    low, high = BOUNDS[name]
    box = QSpinBox()
    box.setRange(int(low), int(high))
    box.setValue(value)
    box.setAccessibleName(name.replace("_", " "))
    return box


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, *, hardware: str, models: list[tuple[str, str]],
                 paths: AppPaths | None = None, runtime: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Haven settings")
        self._original = settings
        tabs = QTabWidget()

        general = QFormLayout()
        self.model = QComboBox()
        self.model.setAccessibleName("Default model")
        for model_id, name in models:
            self.model.addItem(name, model_id)
        index = self.model.findData(settings.default_model) if settings.default_model else 0
        self.model.setCurrentIndex(max(index, 0))
        general.addRow("Default model", self.model)
        self.theme = QComboBox()
        self.theme.setAccessibleName("Theme")
        for theme in Theme:
            self.theme.addItem(theme.value.capitalize(), theme.value)
        self.theme.setCurrentIndex(self.theme.findData(settings.theme.value))
        general.addRow("Theme", self.theme)
        self.instructions = QPlainTextEdit(settings.user_instructions)
        self.instructions.setAccessibleName("Your instructions")
        self.instructions.setPlaceholderText("How Haven should answer you (added after the safety prompt)")
        general.addRow("Your instructions", self.instructions)
        tabs.addTab(self._page(general), "General")

        generation = QFormLayout()
        self.temperature = _double("temperature", settings.temperature, 0.05)
        self.top_p = _double("top_p", settings.top_p, 0.01)
        self.top_k = _int("top_k", settings.top_k)
        self.min_p = _double("min_p", settings.min_p, 0.01)
        self.repeat_penalty = _double("repeat_penalty", settings.repeat_penalty, 0.01)
        self.max_tokens = _int("max_tokens", settings.max_tokens)
        for label, widget in (("Temperature", self.temperature), ("Top-p", self.top_p), ("Top-k", self.top_k),
                              ("Min-p", self.min_p), ("Repeat penalty", self.repeat_penalty),
                              ("Max reply tokens", self.max_tokens)):
            generation.addRow(label, widget)
        tabs.addTab(self._page(generation), "Generation")

        hardware_form = QFormLayout()
        self.context = _int("context_length", settings.context_length)
        hardware_form.addRow("Context length", self.context)
        self.gpu = QComboBox()
        self.gpu.setAccessibleName("GPU offload")
        for label, value in (("Automatic", GpuOffload.AUTO), ("All layers", GpuOffload.ALL), ("None (CPU)", 0)):
            self.gpu.addItem(label, value)
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(1, 1000)
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu.addItem("This many layers", "custom")
        if settings.gpu_layers in (GpuOffload.AUTO, GpuOffload.ALL, 0):
            self.gpu.setCurrentIndex(self.gpu.findData(settings.gpu_layers))
        else:
            self.gpu.setCurrentIndex(self.gpu.findData("custom"))
            self.gpu_layers.setValue(settings.gpu_layers)
        hardware_form.addRow("GPU offload", self.gpu)
        hardware_form.addRow("GPU layers", self.gpu_layers)
        self.threads = _int("threads", settings.threads)
        self.threads.setSpecialValueText("Automatic (one per core)")
        hardware_form.addRow("Threads", self.threads)
        hardware_form.addRow("This computer", QLabel(hardware))
        if runtime:  # which llama.cpp backend runs the model, and where its layers went
            self.runtime = QLabel(runtime)
            self.runtime.setWordWrap(True)
            self.runtime.setAccessibleName("Backend in use")
            hardware_form.addRow("Backend in use", self.runtime)
        tabs.addTab(self._page(hardware_form), "Hardware")

        safety = QFormLayout()
        prompt = QPlainTextEdit(SAFETY_SYSTEM_PROMPT)
        prompt.setReadOnly(True)
        prompt.setAccessibleName("Built-in safety prompt")
        safety.addRow("Built-in safety prompt (always first)", prompt)
        self.guard = QCheckBox("Also check with the Llama Guard 3 model when it is installed")
        self.guard.setChecked(settings.safety_guard_model)
        self.guard.setAccessibleName("Use the guard model")
        safety.addRow(self.guard)
        tabs.addTab(self._page(safety), "Safety")

        self.server: ServerPage | None = None
        if paths is not None:
            tabs.addTab(self._data_page(paths), "Data")
            self.server = ServerPage(settings, paths)
            tabs.addTab(self.server, "Server")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.reset_generation)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)

    def _data_page(self, paths: AppPaths) -> QWidget:
        form = QFormLayout()
        folder = QLabel(str(paths.data_dir))
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        open_folder = QPushButton("Open data folder")
        open_folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.data_dir))))
        form.addRow("Data folder (set HAVEN_HOME to move it)", folder)
        form.addRow(open_folder)
        self.tokens = TokenStore(paths)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setAccessibleName("Hugging Face token")
        self.token.setPlaceholderText("saved" if self.tokens.get() else "only needed for gated models")
        save_token = QPushButton("Save token")
        save_token.clicked.connect(self._save_token)
        remove_token = QPushButton("Remove token")
        remove_token.clicked.connect(self._remove_token)
        self.token_status = QLabel("")
        row = QHBoxLayout()
        row.addWidget(self.token, 1)
        row.addWidget(save_token)
        row.addWidget(remove_token)
        form.addRow("Hugging Face token", row)
        form.addRow(self.token_status)
        self.safety_log = SafetyLog(paths.safety_log_file)
        view_log = QPushButton("View safety log…")
        view_log.clicked.connect(self.show_safety_log)
        form.addRow("Safety log (kept on this computer only)", view_log)
        return self._page(form)

    def _save_token(self) -> None:
        try:
            where = self.tokens.set(self.token.text())
        except HavenError as exc:
            self.token_status.setText(str(exc))
            return
        self.token.clear()
        self.token.setPlaceholderText("saved")
        self.token_status.setText(f"Saved in {where}.")

    def _remove_token(self) -> None:
        self.tokens.clear()
        self.token.setPlaceholderText("only needed for gated models")
        self.token_status.setText("The token was removed.")

    def show_safety_log(self) -> QDialog:
        dialog = QDialog(self)
        dialog.setWindowTitle("Safety log")
        text = QPlainTextEdit()
        text.setReadOnly(True)
        text.setAccessibleName("Safety log")

        def fill() -> None:
            entries = self.safety_log.entries()
            text.setPlainText("\n".join(
                f"{e.time}  {e.stage:6s}  {'allowed' if e.allowed else 'BLOCKED ' + (e.category or '')}  "
                f"{e.classifier}" + ("" if e.score is None else f"  score {e.score:.3f}") for e in entries)
                or "The safety log is empty.")

        clear = QPushButton("Clear the log")
        clear.clicked.connect(lambda: (self.safety_log.clear(), fill()))
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        layout.addWidget(clear)
        fill()
        dialog.resize(640, 400)
        dialog.show()
        return dialog

    @staticmethod
    def _page(form: QFormLayout) -> QWidget:
        page = QWidget()
        page.setLayout(form)
        return page

    def reset_generation(self) -> None:
        defaults = Settings()
        self.temperature.setValue(defaults.temperature)
        self.top_p.setValue(defaults.top_p)
        self.top_k.setValue(defaults.top_k)
        self.min_p.setValue(defaults.min_p)
        self.repeat_penalty.setValue(defaults.repeat_penalty)
        self.max_tokens.setValue(defaults.max_tokens)

    def result_settings(self) -> Settings:
        gpu = self.gpu.currentData()
        return self._original.replace(
            default_model=self.model.currentData(), theme=Theme(self.theme.currentData()),
            user_instructions=self.instructions.toPlainText(), temperature=self.temperature.value(),
            top_p=self.top_p.value(), top_k=self.top_k.value(), min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(), max_tokens=self.max_tokens.value(),
            context_length=self.context.value(), gpu_layers=self.gpu_layers.value() if gpu == "custom" else gpu,
            threads=self.threads.value(), safety_guard_model=self.guard.isChecked(),
            **(self.server.values() if self.server is not None else {}),
        )
