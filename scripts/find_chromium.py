"""Find the system Chromium the browser tests drive; install it with apt when we are root."""

import os
import shutil
import subprocess
import sys

CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]


def found() -> str | None:
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def main() -> int:
    path = found()
    if path:
        return 0
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("Chromium not found: installing the Debian package 'chromium'…")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
        if found():
            return 0
    print(
        "Chromium is needed for the browser tests: install the Debian package 'chromium' "
        "(apt-get install chromium) or set CHROMIUM_PATH.",
        file=sys.stderr,
    )
    return 0 if os.environ.get("CHROMIUM_PATH") else 1


if __name__ == "__main__":
    sys.exit(main())
