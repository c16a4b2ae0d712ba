"""Imports every model module so the metadata knows all tables (Alembic, tests)."""

from engine.accounts.login_guard import LoginAttempt, WebSession  # noqa: F401
from engine.accounts.models import ApiToken, Membership, Organization, User  # noqa: F401
from engine.audit.models import AuditChain, AuditEvent  # noqa: F401
from engine.certificates.models import Certificate, SecretValue  # noqa: F401
from engine.comments.models import Comment  # noqa: F401
from engine.definitions.models import ProcessDefinition  # noqa: F401
from engine.drafts.models import TaskDraft  # noqa: F401
from engine.establishments.models import Establishment, Portfolio  # noqa: F401
from engine.files.models import StoredFile  # noqa: F401
from engine.notifications.models import Notification, OutboxMessage  # noqa: F401
from engine.reminders.models import Reminder  # noqa: F401
from engine.runtime.models import ProcessInstance, StageCount, Task  # noqa: F401
from engine.scheduler.models import SchedulerJob  # noqa: F401
