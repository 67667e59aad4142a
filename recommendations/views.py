from django.db import connection
from django.http import JsonResponse


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db_connected = True
    except Exception:
        db_connected = False
    return JsonResponse(
        {"status": "ok" if db_connected else "down", "db_connected": db_connected},
        status=200 if db_connected else 503,
    )
