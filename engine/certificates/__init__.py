"""ICP-Brasil certificates: reading and judging uploaded files (``inspect``, pure) and each
establishment's current certificate and history (``service``).

The ``inspect`` function lives in ``engine.certificates.inspect`` and is not re-exported here,
so that name keeps meaning the module.
"""

from engine.certificates.inspect import (
    CertificateError,
    CertificateReport,
    check_usable,
    public_der_from_upload,
)

__all__ = ["CertificateError", "CertificateReport", "check_usable", "public_der_from_upload"]
