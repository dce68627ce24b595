"""All settings of obmen: environment variables with the prefix ``OBMEN_`` (a ``.env`` file works too).

Every field here is documented in ``docs/configuration.md``; keep the two in step.
Secrets are ``SecretStr`` so that they never reach a log line or Flower's config tab.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parseaddr
from functools import lru_cache

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ``cabinet``: the customers' personal cabinet (the site), which submits their EDO packages.
SCOPES = frozenset({"read", "write", "metrics", "invoices", "cabinet"})
# A scope and the scopes it brings along: an ops person who may re-drive may also look, and whoever
# may read the registers may read their figures on /metrics.
IMPLIED = {"write": {"read", "metrics"}, "read": {"metrics"}}


class MissingSetting(ValueError):
    """A setting obmen needs for what it was asked to do is not set (a ``ValueError``: never retried)."""

    def __init__(self, name: str) -> None:
        self.variable = f"OBMEN_{name.upper()}"
        super().__init__(f"{self.variable} is not set")


@dataclass(frozen=True)
class ApiToken:
    token: SecretStr
    scopes: frozenset[str]

    def grants(self, scope: str) -> bool:
        return scope in self.scopes or any(scope in IMPLIED.get(held, ()) for held in self.scopes)


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs.

    psycopg2 turns batched ON CONFLICT inserts into row-by-row executemany (a 10x trap measured in
    performance-anchors.md); psycopg 3 batches them.
    """
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OBMEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- stores -----------------------------------------------------------------------------
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/obmen"
    broker_url: str = "redis://127.0.0.1:6379/0"
    db_pool_size: int = Field(5, ge=1)

    # --- Celery reliability -----------------------------------------------------------------
    visibility_timeout_s: int = Field(7200, ge=1)
    task_soft_time_limit_s: int = Field(300, ge=1)
    task_time_limit_s: int = Field(360, ge=1)
    worker_eta_task_limit: int = Field(20000, ge=1)
    worker_max_memory_per_child_kb: int = Field(512_000, ge=1)
    broker_socket_timeout_s: float = Field(5.0, gt=0)

    # --- the one retry policy ---------------------------------------------------------------
    max_attempts: int = Field(8, ge=1)
    retry_backoff_s: int = Field(5, ge=1)
    retry_backoff_max_s: int = Field(600, ge=1)

    # --- outbox, sweeper, canary ------------------------------------------------------------
    outbox_relay_interval_s: int = Field(5, ge=1)
    outbox_relay_batch: int = Field(500, ge=1)
    # Twice the relay interval: a row is published by a relay run before it falls due; waits
    # longer than this are rows, so pending work costs no worker memory (≈ 10 KB per countdown).
    outbox_horizon_s: int = Field(10, ge=0)
    outbox_retention_days: int = Field(7, ge=1)
    sweep_interval_s: int = Field(15, ge=1)
    stale_after_s: int = Field(900, ge=1)
    lost_after_s: int = Field(30, ge=1)

    # --- retention of the log registers (the sweeper purges older rows) ------------------------
    exchange_log_retention_days: int = Field(90, ge=1)
    dead_letters_retention_days: int = Field(90, ge=1)
    canaries_retention_days: int = Field(90, ge=1)
    sep_exchange_history_retention_days: int = Field(90, ge=1)
    sep_exchange_errors_retention_days: int = Field(90, ge=1)
    purge_batch: int = Field(1000, ge=1)
    canary_interval_s: int = Field(300, ge=10)
    beat_lease_s: int = Field(60, ge=4)

    # --- processes --------------------------------------------------------------------------
    api_tokens: SecretStr = SecretStr("")
    flower_basic_auth: SecretStr | None = None
    # Touched when a worker is ready to consume (a container readiness probe, the test harness).
    worker_ready_file: str | None = None
    # A worker serves its task metrics for Prometheus on this port (workers/metrics.py); unset: none.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    log_level: str = "INFO"
    log_json: bool = True
    max_request_body_bytes: int = Field(1_048_576, ge=1024)

    # --- the web console (/console/) ------------------------------------------------------------
    # Signs the session cookies; every gateway process must share it. Unset: a random key per
    # process (sessions end with the process, and several gateway processes do not share them).
    console_secret: SecretStr | None = None
    # Mark the session cookie Secure (set it when the console is served over TLS).
    console_secure_cookies: bool = False
    console_session_hours: float = Field(12.0, gt=0)
    # More failed logins than this in the window, per login or per address, are refused.
    console_login_max_failures: int = Field(5, ge=1)
    console_login_window_s: int = Field(900, ge=1)
    # Tab counts are computed at most once per this many seconds per process (0: on every page).
    console_count_cache_s: float = Field(10.0, ge=0)
    console_page_size: int = Field(50, ge=5, le=500)

    # --- SEP (АС «СЭП») ------------------------------------------------------------------------
    # External systems have no default address: a missing one is refused naming its setting
    # (``Settings.url``, the self-check), never silently pointed at an emulator.
    sep_url: str | None = None
    sep_min_poll_delay_s: int = Field(60, ge=0)
    sep_poll_interval_s: int = Field(60, ge=1)
    sep_max_polls: int = Field(30, ge=1)
    sep_max_not_before_s: int = Field(3600, ge=1)
    sep_connect_timeout_s: float = Field(5.0, gt=0)
    sep_read_timeout_s: float = Field(30.0, gt=0)
    sep_operation_timeout_s: float = Field(60.0, gt=0)
    sep_max_response_bytes: int = Field(5_000_000, ge=1024)
    sep_auto_confirm: bool = False
    sep_application_data_fresh_s: int = Field(300, ge=0)
    sep_request_applications_interval_s: int = Field(3600, ge=10)
    sep_request_applications_days: int = Field(30, ge=1)
    sep_lease_confirm_days: int = Field(10, ge=1)
    sep_digest_interval_s: int = Field(3600, ge=10)
    sep_digest_days: int = Field(2, ge=0)

    # --- mail --------------------------------------------------------------------------------
    imap_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    mail_poll_interval_s: int = Field(60, ge=1)
    mail_fetch_batch: int = Field(50, ge=1, le=1000)
    mail_fetch_max_per_run: int = Field(2000, ge=1)
    mail_max_message_bytes: int = Field(10 * 1024 * 1024, ge=4096)
    mail_timeout_s: float = Field(30.0, gt=0)
    mail_ca_file: str | None = None
    mail_from: str = "obmen <obmen@localhost>"
    sep_mail_senders: str = "@elpts.ru"

    # --- bank, Bitrix24, СБИС --------------------------------------------------------------------
    bank_hmac_secrets: SecretStr = SecretStr("")
    bank_timestamp_tolerance_s: int = Field(300, ge=1)
    bank_max_body_bytes: int = Field(16_384, ge=512)
    bank_max_payment: Decimal = Field(Decimal("10000000.00"), gt=0)
    bitrix24_webhook_url: SecretStr | None = None
    bitrix24_application_token: SecretStr | None = None
    # The portal's leaky bucket (ordinary plans: 50 at once, draining 2/s), shared by all workers;
    # the burst is kept below the portal's so that network jitter cannot overfill it.
    bitrix24_rate_per_s: float = Field(2.0, gt=0)
    bitrix24_burst: int = Field(40, ge=1)
    # A call sleeps at most this long for a slot; a longer wait defers its step instead (a worker
    # asleep for the portal is a worker not posting payments).
    bitrix24_max_wait_s: float = Field(0.1, ge=0)
    bitrix24_timeout_s: float = Field(30.0, gt=0)
    # The portal's deal stages and business-process templates the billing flow uses.
    bitrix24_stage_awaiting_payment: str = "UC_AWAIT"
    bitrix24_stage_paid: str = "UC_PAID"
    bitrix24_template_payment_reminder: int = Field(1, ge=1)
    bitrix24_template_connect: int = Field(2, ge=1)
    bitrix24_template_disconnect: int = Field(3, ge=1)
    bitrix24_template_change_tariff: int = Field(4, ge=1)

    # --- billing -------------------------------------------------------------------------------
    billing_reminder_after_days: float = Field(10.0, ge=0)
    billing_disconnect_after_days: float = Field(30.0, ge=0)
    billing_escalate_interval_s: int = Field(300, ge=1)
    # Which Bitrix24 user (the head of the department) gets a subscriber's request of another kind
    # than connect/disconnect/change tariff as a task: JSON, kind -> user id; "other" for the rest.
    billing_departments: dict[str, int] = {"question": 1, "complaint": 1, "other": 1}
    # The planned-works reminder goes this many hours before the works start.
    works_reminder_before_h: float = Field(24.0, ge=0)

    # --- SMS to subscribers (SMSC, smsc.ru) --------------------------------------------------------
    sms_url: str | None = None
    sms_login: str | None = None
    sms_password: SecretStr | None = None
    # The sender name registered with the provider; empty: the account's default.
    sms_sender: str = ""
    # Our pace for the account, shared by every worker (SMSC refuses bursts with error 9).
    sms_rate_per_s: float = Field(5.0, gt=0)
    sms_burst: int = Field(5, ge=1)
    sms_max_wait_s: float = Field(0.5, ge=0)
    sms_timeout_s: float = Field(30.0, gt=0)
    # A sent message's delivery report is asked for this often, at most this many times.
    sms_status_interval_s: int = Field(60, ge=1)
    sms_status_max_checks: int = Field(60, ge=1)
    sbis_url: str | None = None
    sbis_login: str | None = None
    sbis_password: SecretStr | None = None
    sbis_timeout_s: float = Field(30.0, gt=0)
    sbis_page_size: int = Field(100, ge=1, le=200)
    # Our organisation as СБИС knows it (НашаОрганизация of every act).
    sbis_organization_inn: str = ""
    sbis_organization_kpp: str = ""

    # --- legally significant EDO through Synerdocs (seed 002) -------------------------------------
    synerdocs_url: str | None = None
    # The company's account at the operator and its default box (``<guid>@synerdocs.ru``).
    synerdocs_login: str | None = None
    synerdocs_password: SecretStr | None = None
    synerdocs_application_id: str = ""
    synerdocs_box: str = ""
    # Synerdocs' own operator code: of a counterparty listed by several operators, its entry is kept.
    synerdocs_operator_code: str = "2IG"
    # Fernet key (``Fernet.generate_key()``) encrypting box passwords in ``edo_boxes``.
    synerdocs_credentials_key: SecretStr | None = None
    synerdocs_connect_timeout_s: float = Field(5.0, gt=0)
    # One request from connecting to the last byte of the answer, whatever trickles.
    synerdocs_deadline_s: float = Field(60.0, gt=0)
    synerdocs_max_answer_bytes: int = Field(60_000_000, ge=65_536)
    synerdocs_max_file_bytes: int = Field(20_000_000, ge=1024)
    # The company as the operator knows it (its box's organisation): the ИНН its answers' signatures
    # must name, and the box row made from the default account.
    synerdocs_inn: str = ""
    synerdocs_kpp: str = ""
    synerdocs_name: str = ""

    # --- the EDO flow ------------------------------------------------------------------------------
    edo_fetch_interval_s: int = Field(60, ge=1)
    edo_track_interval_s: int = Field(300, ge=1)
    edo_deadline_sweep_interval_s: int = Field(300, ge=1)
    edo_deadline_batch: int = Field(2000, ge=1)
    # A package from the cabinet: at most this many documents, each file at most
    # OBMEN_SYNERDOCS_MAX_FILE_BYTES, the whole upload at most this many bytes.
    edo_max_documents: int = Field(20, ge=1, le=100)
    edo_max_upload_bytes: int = Field(64_000_000, ge=4096)

    # --- acts of completed work (seed 003) --------------------------------------------------------
    acts_track_interval_s: int = Field(60, ge=1)
    acts_deadline_sweep_interval_s: int = Field(60, ge=1)
    acts_deadline_batch: int = Field(2000, ge=1)
    acts_reconcile_interval_s: int = Field(300, ge=1)
    acts_reconcile_overlap_s: int = Field(120, ge=0)
    acts_signature_working_days: int = Field(5, ge=1)
    acts_form_answer_days: int = Field(3, ge=1)
    acts_public_url: str = "http://127.0.0.1:8000"
    acts_stage_approved: str = "UC_APPROVED"
    acts_stage_act_sent: str = "UC_ACT_SENT"
    acts_stage_done: str = "WON"
    acts_stage_remarks: str = "UC_REMARKS"
    # The deal's stage while it has acts in draft only («Подготовка акта»).
    acts_stage_preparing: str = "PREPARATION"
    # Each act as an item of this Bitrix24 smart process (its entityTypeId); unset: no items.
    acts_item_entity_type_id: int | None = Field(None, ge=1)
    # The smart process's funnel (categoryId): its stages are DT<type>_<category>:<code>.
    acts_item_category_id: int = Field(0, ge=0)
    # The item's user fields (as crm.item.* names them): the act's file, obmen's note on the item.
    acts_item_file_field: str = "ufCrmObmenActFile"
    acts_item_note_field: str = "ufCrmObmenActNote"
    # The acts group: the Bitrix24 users who may move acts in the portal (comma-separated ids);
    # empty: every user may. Others' moves are refused and put back.
    acts_group_user_ids: str = ""
    # The deal's user field listing the product rows (their ID) an act is needed for.
    acts_deal_products_field: str = "UF_CRM_OBMEN_ACT_PRODUCTS"
    # How often an act sent by e-mail looks whether its letter has left.
    acts_email_check_s: int = Field(30, ge=1)

    # --- invoices from 1C (seed 004) -----------------------------------------------------------------
    onec_url: str | None = None
    onec_user: str | None = None
    onec_password: SecretStr | None = None
    # 1C's licences are few: at most this many calls at once, across every worker and machine.
    onec_max_sessions: int = Field(4, ge=1)
    onec_timeout_s: float = Field(30.0, gt=0)
    # A call waits this long at most for a free session; past it, its step is deferred.
    onec_max_wait_s: float = Field(0.1, ge=0)
    onec_busy_retry_s: float = Field(5.0, gt=0)
    onec_changes_page_size: int = Field(100, ge=1, le=1000)
    invoice_max_file_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    invoice_poll_interval_s: int = Field(60, ge=1)
    invoice_link_ttl_s: int = Field(7 * 24 * 3600, ge=60)

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("synerdocs_credentials_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            try:
                Fernet(value.get_secret_value().encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise ValueError("a Fernet key: 32 bytes, url-safe base64 (Fernet.generate_key())") from exc
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(
                "OBMEN_MAIL_FROM is an address, optionally with a name: 'obmen <obmen@example.ru>'"
            )
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_parse(cls, value: SecretStr) -> SecretStr:
        parse_api_tokens(value.get_secret_value())
        return value

    def url(self, name: str) -> str:
        """The address setting ``name`` (``"sep_url"``), or :class:`MissingSetting` naming its variable."""
        value = getattr(self, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value:
            raise MissingSetting(name)
        return str(value)

    @property
    def max_countdown_s(self) -> int:
        """The longest countdown any task may be given: a retry backoff, an outbox delay or a SEP poll.

        Everything longer is a row with a due time, never a broker message.
        """
        return max(
            self.retry_backoff_max_s,
            self.outbox_horizon_s,
            self.sep_min_poll_delay_s,
            self.sep_poll_interval_s,
        )

    @field_validator("acts_group_user_ids")
    @classmethod
    def _acts_group(cls, value: str) -> str:
        if any(not part.strip().isdigit() for part in value.split(",") if part.strip()):
            raise ValueError("OBMEN_ACTS_GROUP_USER_IDS: Bitrix24 user ids separated by commas, e.g. '7,12'")
        return value

    @property
    def acts_group(self) -> frozenset[int]:
        return frozenset(int(part) for part in self.acts_group_user_ids.split(",") if part.strip())

    @property
    def sep_senders(self) -> list[str]:
        return [s.strip() for s in self.sep_mail_senders.split(",") if s.strip()]

    def bank_secrets(self) -> list[bytes]:
        """``OBMEN_BANK_HMAC_SECRETS``: comma-separated, newest first (two while rotating)."""
        raw = self.bank_hmac_secrets.get_secret_value()
        return [part.strip().encode() for part in raw.split(",") if part.strip()]

    def tokens(self) -> list[ApiToken]:
        return parse_api_tokens(self.api_tokens.get_secret_value())

    def token_for(self, presented: str) -> ApiToken | None:
        """The configured token equal to ``presented``, compared in constant time."""
        found = None
        for token in self.tokens():
            if hmac.compare_digest(token.token.get_secret_value().encode(), presented.encode()):
                found = token
        return found


def parse_api_tokens(raw: str) -> list[ApiToken]:
    """``OBMEN_API_TOKENS``: comma-separated ``scopes:token`` entries, scopes joined by ``+``.

    Example: ``read+write:ops-secret,read:dashboard-secret``.
    """
    tokens = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        scopes_part, sep, token = entry.partition(":")
        scopes = frozenset(s.strip() for s in scopes_part.split("+") if s.strip())
        if not sep or not token or not scopes or not scopes <= SCOPES:
            raise ValueError(
                "OBMEN_API_TOKENS entries look like 'read+write:TOKEN' "
                f"(scopes: {', '.join(sorted(SCOPES))}); "
                f"one entry does not (scopes given: {sorted(scopes)})"
            )
        tokens.append(ApiToken(SecretStr(token), scopes))
    return tokens


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
