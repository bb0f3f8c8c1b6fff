"""Running workflows on a service: check, run (synchronous: Standard and Cluster editions), submit
and results (asynchronous: the API edition's queue), with a local journal that makes results
exactly-once (one result, or one dead letter, per task id).

- ``target``: the service's endpoint, token and edition (given, or from DescribeService).
- ``check``: the workflow against its graph, the mount and the service's ``/object_info``.
- ``matrix``: the jobs one submit sends (``count`` copies, or one per matrix entry).
- ``journal``: the durable JSON-lines journal of submits and results.
- ``run``: a synchronous run, followed on the websocket, its outputs downloaded.
- ``queue``: submit to ``/api_prompt`` and collect results from the sink.
- ``resubmit``: tasks that never come back, sent again on request, then dead-lettered.

Talks to services only through ``adapters.comfy_http``, ``adapters.eas_queue`` and
``adapters.eas``; progress goes to a ``Progress`` (the CLI's Out).
"""
