"""lsnn.searcher: the LitE-SNN search, decode, retrain and export (PyTorch)."""
