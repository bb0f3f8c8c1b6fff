"""The pure core: spec loading and validation, editions, rendering. No network, no SDK, no CLI."""
