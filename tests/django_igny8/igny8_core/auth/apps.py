from django.apps import AppConfig


class AuthConfig(AppConfig):
    name = "igny8_core.auth"
    label = "igny8_core_auth"
