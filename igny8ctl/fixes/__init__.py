"""The fix catalogue (``igny8ctl.fixes.registry``), their typed parameters
(``igny8ctl.fixes.params``, importable without SQLAlchemy) and plans (``base``)."""
