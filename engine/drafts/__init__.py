"""Half-filled task forms kept for later (one draft per task and user)."""
