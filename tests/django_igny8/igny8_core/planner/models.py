"""Keywords and the clusters auto-cluster groups them into, per site and account."""

from django.db import models

from igny8_core.auth.models import Account, Site


class Clusters(models.Model):
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    keywords_count = models.IntegerField(default=0)
    volume = models.IntegerField(default=0)
    status = models.CharField(max_length=20, default="active")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="clusters")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="clusters")

    class Meta:
        db_table = "planner_clusters"
        unique_together = (("site", "name"),)


class Keywords(models.Model):
    STATUSES = (("pending", "Pending"), ("clustered", "Clustered"), ("archived", "Archived"))
    INTENTS = (("informational", "Informational"), ("commercial", "Commercial"),
               ("transactional", "Transactional"), ("navigational", "Navigational"))

    keyword = models.CharField(max_length=255)
    volume = models.IntegerField(default=0)
    difficulty = models.IntegerField(default=0)
    intent = models.CharField(max_length=20, choices=INTENTS, default="informational")
    status = models.CharField(max_length=20, choices=STATUSES, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="keywords")
    cluster = models.ForeignKey(Clusters, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="keywords")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="keywords")

    class Meta:
        db_table = "planner_keywords"
        unique_together = (("site", "keyword"),)
