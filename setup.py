"""Packaging beyond what pyproject.toml can say: ``processes/`` and ``migrations/`` ship inside
the wheel as the packages ``credencia_processes`` and ``credencia_migrations`` (found by
``engine.settings.bundled``), so an installed Credencia deploys and migrates from itself.
Their files are listed in pyproject.toml's package-data."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["engine", "engine.*", "web", "web.*"]),
        "credencia_processes",
        "credencia_migrations",
    ],
    package_dir={"credencia_processes": "processes", "credencia_migrations": "migrations"},
)
