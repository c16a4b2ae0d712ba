"""Credentials: what each establishment holds with the RNDS, one record per organization ×
principal establishment × portfolio, written by the processes that declare it."""
