"""Adapters: the only modules that import cloud SDKs and HTTP clients (see docs/architecture.md)."""
