"""Per-account integration settings (OpenAI keys and the like)."""

from django.db import models

from igny8_core.auth.models import Account


class IntegrationSettings(models.Model):
    integration_type = models.CharField(max_length=30)
    config = models.JSONField(default=dict)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE,
                                related_name="integration_settings")

    class Meta:
        db_table = "system_integrationsettings"
        unique_together = (("account", "integration_type"),)
