"""Word vectors: vocabularies, count-based and trained embeddings, evaluation, WMD."""
