from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "igny8_core.system"
    label = "system"
