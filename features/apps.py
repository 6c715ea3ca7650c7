from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    name = "features"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from features import signals  # noqa: F401  (connects default-state creation)
