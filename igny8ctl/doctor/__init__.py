"""``igny8ctl doctor``: why can't this user, or this tenant, use auto-cluster?

The steps igny8 takes for a request are data (``steps.USER_STEPS``, ``steps.TENANT_STEPS``);
each observes one thing and returns a typed result. A diagnosis reads one read-only
snapshot, only through primary keys and the indexes on ``account_id``, and never prints.
"""
