"""Shared test support: builders, flows, PKI, pages, mail, live servers (no tests here)."""
