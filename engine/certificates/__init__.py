"""Each establishment's ICP-Brasil certificate: registering it, its history and its status
(``service``), and the trusted roots bundle as an audited operation (``roots``).

Reading and judging certificate files is pure knowledge and lives in ``engine.pki``.
"""
