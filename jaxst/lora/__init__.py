"""LoRA adapters with PEFT's options and file format: `SentenceTransformer.add_adapter(LoraConfig(...))`."""

from jaxst.lora.config import LoraConfig

__all__ = ["LoraConfig"]
