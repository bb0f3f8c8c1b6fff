"""Storage: the service's mounted OSS folder and the files that go to and come from it.

- ``mount``: the mounted folder. ``Mount`` (the one bucket-plus-prefix type, opened from a spec),
  ``parse_oss_uri``, the layout ComfyUI expects (``LAYOUT``, ``MODEL_KINDS``), the bucket check,
  listing, and where each kind of file goes (models, custom nodes, wheels).
- ``upload``: the upload engine (``Uploader``): parallel multipart, resumable from checkpoints,
  CRC64-verified end to end; the CRC cache that skips unchanged files without reading them.
- ``pull_source``: models from where they live (``hf://``, ``ms://``, ``civitai://``, ``https://``) streamed into the mount
  through the upload engine (``plan_pulls``, ``run_pulls``), no local copy, SHA-256 checked,
  resumable on both sides (``resumable_hash``: the SHA-256 state a checkpoint keeps).
- ``pull``: objects under a prefix (ComfyUI's output/) into a local folder, refusing names that
  would escape it.
- ``sync``: the spec's ``models:`` list planned against the mount (``plan_sync`` -> ``SyncPlan``).
- ``lock``: the mount's half of ``eascomfy.lock``: the bucket planned against the spec and the lock
  (``plan_storage`` -> ``StoragePlan``), synced and recorded (``sync_and_build``, ``write_lock``),
  the section kept per deployed version for rollback (``record_deployed``, ``version_differences``).
"""
