"""Imports every model module so the metadata knows all tables (Alembic, tests)."""

from engine.accounts.models import (  # noqa: F401
    ApiToken,
    Invitation,
    LoginAttempt,
    Membership,
    Organization,
    User,
    WebSession,
)
from engine.analytics.models import AnalyticsBucket, AnalyticsState  # noqa: F401
from engine.audit.models import (  # noqa: F401
    AuditChain,
    AuditCheckpoint,
    AuditEvent,
    AuthFailureCount,
)
from engine.certificates.models import Certificate  # noqa: F401
from engine.comments.models import Comment  # noqa: F401
from engine.credentials.models import Credential, CredentialChild  # noqa: F401
from engine.dashboard.models import StageCount  # noqa: F401
from engine.definitions.models import ProcessDefinition  # noqa: F401
from engine.drafts.models import TaskDraft  # noqa: F401
from engine.establishments.models import Establishment, Portfolio  # noqa: F401
from engine.files.models import StoredFile  # noqa: F401
from engine.lgpd.models import (  # noqa: F401
    AccessChain,
    AccessEntry,
    AnonymizedInstance,
    DataSubject,
    SealedValue,
    SubjectRequest,
)
from engine.notifications.models import Notification, OutboxMessage  # noqa: F401
from engine.reminders.models import Reminder  # noqa: F401
from engine.runtime.models import ProcessInstance, Task  # noqa: F401
from engine.scheduler.models import SchedulerJob  # noqa: F401
from engine.secrets.models import SecretValue  # noqa: F401
from engine.terms.models import TermAcceptance  # noqa: F401
