#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Outside the dev bootstrap a missing setting or an unreachable database is one line saying how to
run the command, not a traceback.
"""

import os
import sys

HOW_TO_RUN = (
    "start one with `make services` (then `eval $(python -m devstack env)`), or run through "
    "`python -m devstack run -- python manage.py …`"
)


def _database_reachable() -> bool:
    from django.db import connection
    from django.db.utils import OperationalError

    connection.close()
    try:
        connection.ensure_connection()
    except OperationalError:
        return False
    return True


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tunedin.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings, which read the environment)
    except ImproperlyConfigured as error:
        sys.exit(f"tunedin: {' '.join(str(error).split())}")
    try:
        execute_from_command_line(sys.argv)
    except OperationalError:
        if _database_reachable():  # a failure of the command, not of the connection
            raise
        sys.exit(f"tunedin: no database at DATABASE_URL; {HOW_TO_RUN}.")


if __name__ == "__main__":
    main()
