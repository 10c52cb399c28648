"""Settings, read from the environment.

Development defaults are safe for ``make run``. With ``DJANGO_ENV=production`` a missing
``SECRET_KEY`` is an error and the security settings ``check --deploy`` asks for are on.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")
    SECRET_KEY = "dev-only-insecure-key-not-for-production-use-0123456789abcdef"  # noqa: S105

DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "csp",
    "axes",
    "personas",
    "customers",
    "imports",
    "flows",
]

MIDDLEWARE = [
    "config.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "personas.middleware.NoStoreMiddleware",  # no-store for staff pages and customer pages
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "personas.context_processors.roles",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'personas.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web server read while the task worker writes. A checkpoint every
            # 10,000 pages (40 MB of log) rather than SQLite's 1,000: bulk writers (imports,
            # flows) commit every batch, and copying the log back after every few batches
            # cost a third of their commit time.
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA wal_autocheckpoint=10000;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    test_name = os.environ.get("SQLITE_TEST_NAME")
    if test_name:
        DATABASES["default"]["TEST"] = {"NAME": test_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "personas:list"
LOGOUT_REDIRECT_URL = "login"

# Lock out after repeated failed sign-ins: AXES_FAILURE_LIMIT per username and address, and
# PERSONAS_SIGNIN_FAILURES_PER_ADDRESS per address whatever the usernames (one password tried
# across many accounts), both within AXES_COOLOFF_TIME (personas.client.SigninThrottleHandler).
# The address is the client address of every rate limit (PERSONAS_TRUSTED_PROXY_COUNT below).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_HANDLER = "personas.client.SigninThrottleHandler"
AXES_CLIENT_IP_CALLABLE = "personas.client.axes_client_ip"  # takes precedence over django-ipware
PERSONAS_SIGNIN_FAILURES_PER_ADDRESS = int(
    os.environ.get("PERSONAS_SIGNIN_FAILURES_PER_ADDRESS", "30")
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))

# Background work: Django's Tasks API. The database backend by default (``manage.py db_worker``);
# "immediate" runs tasks inline (tests); "rq" uses django-tasks-rq when a deployment wants Redis.
TASK_BACKEND = os.environ.get("TASK_BACKEND", "database")
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "dummy": "django_tasks.backends.dummy.DummyBackend",
    "rq": "django_tasks_rq.RQBackend",
}
TASKS = {
    "default": {
        "BACKEND": _TASK_BACKENDS.get(TASK_BACKEND, TASK_BACKEND),
        "QUEUES": ["default"],
        "ENQUEUE_ON_COMMIT": TASK_BACKEND != "immediate",
    }
}

# Messages to customers. SMS_BACKEND works like EMAIL_BACKEND.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "personas.messaging.backends.ConsoleBackend")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
# Inbound texts (/sms/inbound/) must prove they come from the provider (the backend's
# verify_inbound, e.g. Twilio's request signature): on in production for every backend, and
# whenever the backend is Twilio. A backend that cannot verify then refuses every inbound post.
SMS_VERIFY_SIGNATURES = env_bool("SMS_VERIFY_SIGNATURES", PRODUCTION or "Twilio" in SMS_BACKEND)
# Accept inbound posts a backend cannot verify: anyone could then confirm or cancel a
# customer's text consent. check --deploy reports it as an error (personas.E001).
SMS_INBOUND_ALLOW_UNVERIFIED_RISKY = env_bool("SMS_INBOUND_ALLOW_UNVERIFIED_RISKY", False)
# How text replies are read (personas.services.replies.parse_reply). Comma-separated words;
# opt-out words also count inside a reply of at most PERSONAS_SMS_SHORT_REPLY_WORDS words.
PERSONAS_SMS_OPT_OUT_KEYWORDS = env_list(
    "PERSONAS_SMS_OPT_OUT_KEYWORDS",
    "STOP,STOPALL,STOP ALL,UNSUBSCRIBE,CANCEL,END,QUIT,REVOKE,OPTOUT,OPT OUT",
)
PERSONAS_SMS_CONFIRM_KEYWORDS = env_list(
    "PERSONAS_SMS_CONFIRM_KEYWORDS", "YES,Y,YEAH,YEP,YUP,SI,OUI"
)
PERSONAS_SMS_START_KEYWORDS = env_list("PERSONAS_SMS_START_KEYWORDS", "START,UNSTOP,SUBSCRIBE")
PERSONAS_SMS_HELP_KEYWORDS = env_list("PERSONAS_SMS_HELP_KEYWORDS", "HELP,INFO")
PERSONAS_SMS_SHORT_REPLY_WORDS = int(os.environ.get("PERSONAS_SMS_SHORT_REPLY_WORDS", "6"))
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "personas@localhost")

# Domain settings.
PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "US")
# Email user names that stand for "no email" (staff type them when a customer gives none):
# refused as identifiers, never matched. Phones of one repeated digit or a run of consecutive
# digits are refused the same way (personas.normalize).
PERSONAS_PLACEHOLDER_EMAIL_USERS = frozenset(
    env_list(
        "PERSONAS_PLACEHOLDER_EMAIL_USERS",
        "none,noemail,no-email,no_email,nomail,no.email,noreply,no-reply,donotreply,"
        "do-not-reply,test,na,n/a,null,nil,unknown,email,mail,x,xx,xxx,asdf,abc,decline,"
        "declined,refused,optout",
    )
)
PERSONAS_TEXT_DOUBLE_OPT_IN = env_bool("PERSONAS_TEXT_DOUBLE_OPT_IN", True)
PERSONAS_DOI_RESEND_MINUTES = int(os.environ.get("PERSONAS_DOI_RESEND_MINUTES", "10"))
PERSONAS_DOI_EXPIRY_DAYS = int(os.environ.get("PERSONAS_DOI_EXPIRY_DAYS", "30"))
# No marketing texts between these hours in the store's time zone (None: no quiet hours).
PERSONAS_QUIET_HOURS = (21, 8) if env_bool("PERSONAS_QUIET_HOURS", True) else None
PERSONAS_DEFAULT_TIME_ZONE = os.environ.get("PERSONAS_DEFAULT_TIME_ZONE", "America/New_York")
PERSONAS_SUPPORT_CONTACT = os.environ.get("PERSONAS_SUPPORT_CONTACT", "your store")
PERSONAS_PUBLIC_BASE_URL = os.environ.get("PERSONAS_PUBLIC_BASE_URL", "")
PERSONAS_BRAND_NAME = os.environ.get("PERSONAS_BRAND_NAME", "Personas Demo Store")
PERSONAS_ATTRIBUTE_KEY_MAX = 64
PERSONAS_ATTRIBUTE_VALUE_MAX = 2000
PERSONAS_PAGE_SIZE = 50
# Key for the HMAC of blocklisted identifiers (falls back to SECRET_KEY in development).
BLOCKLIST_HMAC_KEY = os.environ.get("BLOCKLIST_HMAC_KEY", SECRET_KEY)
# CSV imports: the largest upload accepted, and when a silent running import counts as stalled.
IMPORTS_MAX_BYTES = int(os.environ.get("IMPORTS_MAX_BYTES", str(500 * 1024 * 1024)))
IMPORTS_STALE_SECONDS = int(os.environ.get("IMPORTS_STALE_SECONDS", "120"))
IMPORTS_BATCH_SIZE = int(os.environ.get("IMPORTS_BATCH_SIZE", "1000"))
# Cells that mean "no value" in spreadsheet and POS exports: read as blank (compared
# case-insensitively after trimming).
IMPORTS_EMPTY_MARKERS = env_list(
    "IMPORTS_EMPTY_MARKERS", "N/A,n/a,NA,NULL,null,#N/A,none,None,-,--,?,(blank),nil"
)
# Hard limits on a file's shape, checked before a row is held whole: the most columns read, and
# the longest line (the header included). A file beyond them is refused with the line number.
# Rows read at upload to show each column's number and date format on the mapping page (the
# dry run then reads the whole file).
IMPORTS_PROFILE_ROWS = int(os.environ.get("IMPORTS_PROFILE_ROWS", "20000"))
IMPORTS_MAX_COLUMNS = int(os.environ.get("IMPORTS_MAX_COLUMNS", "500"))
IMPORTS_MAX_LINE_BYTES = int(os.environ.get("IMPORTS_MAX_LINE_BYTES", str(1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # uploads above this stream to a temporary file
FILE_UPLOAD_HANDLERS = [
    "imports.uploads.SizeLimitUploadHandler",  # stops an upload past IMPORTS_MAX_BYTES
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# One-time codes (data-controls page, wallet sign-in) and their rate limits.
PERSONAS_CODE_TTL_MINUTES = int(os.environ.get("PERSONAS_CODE_TTL_MINUTES", "10"))
PERSONAS_CODE_MAX_ATTEMPTS = 5
PERSONAS_SIGNUP_RATE_PER_CLIENT = (20, 3600)
# Reverse proxies in front of the app that append to X-Forwarded-For (0: the client is
# REMOTE_ADDR). The client address of every rate limit and sign-in lock-out is the N-th hop
# from the right of X-Forwarded-For + REMOTE_ADDR (personas.client.client_address). The older
# PERSONAS_TRUST_X_FORWARDED_FOR=1 still means one proxy when the count is not set.
PERSONAS_TRUSTED_PROXY_COUNT = int(
    os.environ.get(
        "PERSONAS_TRUSTED_PROXY_COUNT",
        "1" if env_bool("PERSONAS_TRUST_X_FORWARDED_FOR", False) else "0",
    )
)
if PERSONAS_TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("PERSONAS_TRUSTED_PROXY_COUNT must be 0 or more.")
PERSONAS_CODE_RATE_PER_CLIENT = (10, 3600)  # requests per window (seconds) per client address
PERSONAS_CODE_RATE_PER_IDENTIFIER = (3, 3600)  # codes per window per phone/email

# Rate-limit counters live in the cache: shared Redis when several web servers run. In
# production a per-process cache is a startup error (personas.E002, run by migrate and check).
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Content security policy: no inline scripts or styles anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(60 * 60 * 10)))
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"

LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.observability.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # SQL is never logged: queries carry personal data.
    "loggers": {"django.db.backends": {"level": "WARNING", "propagate": True}},
}
AXES_VERBOSE = False

# Flows: a bulk enrolment ("Enrol matching personas") of more personas than this asks the person
# to type the number to confirm it, so an empty search cannot enrol everyone in one click.
FLOWS_ENROL_TYPE_COUNT_ABOVE = int(os.environ.get("FLOWS_ENROL_TYPE_COUNT_ABOVE", "500"))
