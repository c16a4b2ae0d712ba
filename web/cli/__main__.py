"""``python -m web.cli``: the ``credencia`` command."""

from web.cli import main

main()
