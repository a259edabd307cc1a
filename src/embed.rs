//! Sentence embeddings (placeholder; being written).
