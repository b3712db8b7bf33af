"""CRM integration: the CrmBackend protocol, builtin / bitrix24 / webhook backends, and
CrmService, the never-blocking wrapper the call flow uses (see README.md here)."""

from .base import CallInfo, CrmBackend, CrmEntity, CrmError, LeadResult, TranscriptInfo
from .service import CrmService, build_crm

__all__ = [
    "CallInfo",
    "CrmBackend",
    "CrmEntity",
    "CrmError",
    "CrmService",
    "LeadResult",
    "TranscriptInfo",
    "build_crm",
]
