"""Auto-cluster a tenant's keywords: select, ask an engine, validate, plan, write (journaled).

Nothing here imports ``openai`` at import time: only ``openai_engine`` does, and it is
imported when the OpenAI engine actually runs.
"""
