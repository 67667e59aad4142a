from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Recommendations", {"fields": ("onboarded_at", "favourite_tags", "favourite_artists")}),
    )
    autocomplete_fields = ["favourite_tags", "favourite_artists"]
    list_display = ("username", "email", "is_staff", "onboarded_at", "date_joined")
    list_filter = (*BaseUserAdmin.list_filter, "onboarded_at")
