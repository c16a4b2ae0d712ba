"""Terms of use a process declares, shown beside the field that accepts them, and the record of
who accepted which version, when (engine/terms/declared.py, models.py, service.py)."""
