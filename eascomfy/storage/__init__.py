"""Storage: the service's mounted OSS folder and the files that go to and come from it.

- ``upload``: the upload engine (``Uploader``): parallel multipart, resumable from checkpoints,
  CRC64-verified end to end; the CRC cache that skips unchanged files without reading them.
- ``mount``: the mounted folder: its layout (``LAYOUT``, ``MODEL_KINDS``), the bucket check,
  creating the layout, which files a custom node folder holds.
- ``pull``: objects under a prefix (ComfyUI's output/) into a local folder, refusing names that
  would escape it.
- ``sync``: the spec's ``models:`` list planned against the mount (``plan_sync``).
"""
