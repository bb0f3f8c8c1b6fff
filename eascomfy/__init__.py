"""eascomfy: ComfyUI on Alibaba Cloud PAI-EAS as reviewed files in git."""

__version__ = "0.1.0"
