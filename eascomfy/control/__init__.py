"""The control plane: what eascomfy does to a live EAS service, through ``adapters.eas.EasClient``.

- ``deploy``: plan against the live service, apply, wait until ready, roll back a failed update;
  ``update-image``; switch a service to an earlier version; saved plans written.
- ``lifecycle``: status, versions, start / stop / restart (and wait), delete.
- ``wait``: watching a service until it is ready (Running and its endpoint answers) or stopped;
  when it gives up, ``diagnose`` says why.
- ``logs``: instance logs, newest last, and following them.
- ``diagnose``: instances (state, restarts, last reason), EAS's diagnosis, the last log lines of
  troubled instances and the known causes (``core.causes``).

The pure rules these use live in the core: ``core.plan`` (the diff), ``core.planfile`` (saved
plans), ``core.image`` (image-version updates), ``core.limits`` (signed-link validity).
"""
