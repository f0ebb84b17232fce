"""igny8's tenant (Account), its plan, users and sites, with the shared DDL's table names."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Plan(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    monthly_credits = models.IntegerField()
    max_users = models.IntegerField()
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "igny8_core_auth_plan"


class Account(models.Model):
    STATUSES = (("active", "Active"), ("trial", "Trial"), ("suspended", "Suspended"),
                ("cancelled", "Cancelled"))

    name = models.CharField(max_length=150)
    slug = models.SlugField(unique=True)
    credits = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=STATUSES, default="trial")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    owner = models.ForeignKey("igny8_core_auth.User", on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="owned_accounts")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")

    class Meta:
        db_table = "igny8_core_auth_account"


class User(AbstractUser):
    ROLES = (("owner", "Owner"), ("admin", "Admin"), ("editor", "Editor"),
             ("viewer", "Viewer"), ("system_bot", "System bot"))

    role = models.CharField(max_length=20, choices=ROLES, default="viewer")
    account = models.ForeignKey("igny8_core_auth.Account", on_delete=models.CASCADE,
                                null=True, blank=True, related_name="users")

    class Meta:
        db_table = "igny8_core_auth_user"


class Site(models.Model):
    name = models.CharField(max_length=255)
    domain = models.CharField(max_length=255)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sites")

    class Meta:
        db_table = "igny8_core_auth_site"
