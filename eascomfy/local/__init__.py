"""Files on the user's machine: atomic and durable writes, the state directory, safe local names
(``files``), the ``init`` scaffold (``scaffold``) and comment-keeping edits of the spec
(``specfile``). No cloud, no CLI."""
