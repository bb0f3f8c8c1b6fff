"""The control plane: what eascomfy does to a live EAS service, through ``adapters.eas.EasClient``.

- ``deploy``: plan against the live service, apply, wait until ready, roll back a failed update,
  and the other operations on a live service.
"""
