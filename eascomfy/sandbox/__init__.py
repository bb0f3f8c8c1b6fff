"""Sandbox emulators that speak the real wire protocols of EAS, OSS, ComfyUI and the EAS queue.

They exist so that the unmodified official SDKs can be driven over loopback HTTP in tests, demos and
pipelines without touching the cloud. Nothing here is imported by offline commands.
"""
