"""Auto-cluster a tenant's keywords: select, ask an engine, validate, plan, write (journaled).

``job`` runs a proposal: ``selection`` (which keywords, read in keyset batches, and
their fingerprint), an engine (``openai_engine`` with ``contract``, or ``local_engine``),
``naming`` (name rules and merging, batch by batch), into ``types``; ``plan`` saves and
validates plan files; ``writer`` writes a proposal, journaled; ``settings`` resolves the
OpenAI settings and where a key may go. Nothing here imports ``openai`` at import time:
only ``openai_engine`` does, when that engine runs (``prefetch`` starts it early).
"""
