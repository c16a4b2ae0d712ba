"""Process analytics: where credentialing waits and why (issue 17).

Aggregates of the task read model kept in ``analytics_bucket`` by a scheduler job
(``refresh.py``, watermarks in ``analytics_state``), read by ``queries.py``. Nothing here runs
on the task-completion path.
"""
