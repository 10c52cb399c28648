"""Settings for the test suite: the real settings, with tasks run inline unless a test says."""

import os

os.environ.setdefault("TASK_BACKEND", "immediate")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SMS_BACKEND = "personas.messaging.backends.LocmemBackend"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
AXES_ENABLED = False
LOGGING = {"version": 1, "disable_existing_loggers": False}

# A real database-backed queue, for the tests that run a worker process.
TASKS = {
    **TASKS,  # noqa: F405
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so a worker process can open the same test database.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.environ.get("SQLITE_TEST_NAME", str(BASE_DIR / "var" / "test_personas.sqlite3"))  # noqa: F405
    }
