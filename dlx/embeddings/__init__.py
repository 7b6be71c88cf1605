"""Word vectors: vocabularies, count-based and trained embeddings, keyed vectors, evaluation, WMD."""
