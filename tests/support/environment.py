"""What the test session sets up once: its database, the functions' login role, the signing key."""

import os

TEST_JWT_SECRET = "test-signing-key-" + "x" * 32
TEST_DATABASE = f"taskline_test_{os.getpid()}"
# The data-only login the functions use, as in AWS (roles are per server: one per test run).
TEST_APP_ROLE = f"taskline_app_test_{os.getpid()}"
TEST_APP_PASSWORD = "test-app-Password-0123456789"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000  # Settings' default, DB_STATEMENT_TIMEOUT_MS

# The environment before the session's fixtures set theirs (DATABASE_URL through the proxy, the
# signing key): what a child test run must start from.
ORIGINAL_ENVIRONMENT = dict(os.environ)
