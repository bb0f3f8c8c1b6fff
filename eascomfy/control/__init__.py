"""The control plane: what eascomfy does to a live EAS service, through ``adapters.eas.EasClient``.

- ``deploy``: plan against the live service, apply, wait until ready, roll back a failed update;
  ``update-image``; switch a service to an earlier version; saved plans written.
- ``lifecycle``: status, versions, start / stop / restart (and wait), delete.
- ``wait``: watching a service until it is ready (Running and its endpoint answers) or stopped.

The pure rules these use live in the core: ``core.plan`` (the diff), ``core.planfile`` (saved
plans), ``core.image`` (image-version updates), ``core.limits`` (signed-link validity).
"""
