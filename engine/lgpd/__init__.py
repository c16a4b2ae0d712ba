"""Personal data as the LGPD asks: a vault for the audit log's personal values, erasure,
subject reports, the access log of reads and retention (docs/lgpd.md)."""
