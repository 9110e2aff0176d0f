"""Reading and writing model files: Hugging Face checkpoints (hf)."""
