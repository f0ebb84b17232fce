"""igny8's ORM writing with the tenant keys in place: two tenants created, three links
across tenants attempted, a cluster deleted (SET_NULL), an account deleted (CASCADE).
Prints what happened as JSON."""

import json
import os
from collections.abc import Callable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "igny8site.settings")
django.setup()

from django.db import IntegrityError, transaction  # noqa: E402
from igny8_core.auth.models import Account, Plan, Site, User  # noqa: E402
from igny8_core.planner.models import Clusters, Keywords  # noqa: E402
from igny8_core.system.models import IntegrationSettings  # noqa: E402


def tenant(slug: str, plan: Plan) -> tuple[Account, User, Site, Clusters]:
    with transaction.atomic():
        account = Account.objects.create(name=slug.title(), slug=slug, plan=plan)
        owner = User.objects.create_user(username=f"{slug}-owner", account=account, role="owner")
        account.owner = owner
        account.save()
        site = Site.objects.create(name=slug.title(), domain=f"{slug}.example", account=account)
        cluster = Clusters.objects.create(name=f"{slug} shoes", account=account, site=site)
        for number in range(3):
            Keywords.objects.create(keyword=f"{slug} shoes {number}", account=account, site=site,
                                    cluster=cluster)
        IntegrationSettings.objects.create(integration_type="openai", config={"model": "x"},
                                           account=account)
    return account, owner, site, cluster


def refused(action: Callable[[], object]) -> bool:
    try:
        with transaction.atomic():
            action()
    except IntegrityError:
        return True
    return False


plan, _ = Plan.objects.get_or_create(slug="free", defaults={
    "name": "Free", "monthly_credits": 100, "max_users": 1})
acme, acme_owner, acme_site, acme_cluster = tenant("acme", plan)
globex, globex_owner, globex_site, globex_cluster = tenant("globex", plan)
attempts = {
    "keyword into another tenant's cluster": lambda: Keywords.objects.filter(
        account=acme).update(cluster=globex_cluster),
    "cluster onto another tenant's site": lambda: Clusters.objects.filter(
        pk=acme_cluster.pk).update(site=globex_site),
    "owner from another account": lambda: Account.objects.filter(
        pk=acme.pk).update(owner=globex_owner),
}
outcome = {"refused": [label for label, action in attempts.items() if refused(action)]}
acme_cluster.delete()
outcome["detached"] = Keywords.objects.filter(account=acme, cluster__isnull=True).count()
acme.delete()
outcome["left"] = {model.__name__: sorted(model.objects.values_list("pk", flat=True))
                   for model in (Account, User, Site, Clusters, Keywords, IntegrationSettings)}
outcome["globex"] = [globex.pk, globex_owner.pk, globex_site.pk, globex_cluster.pk]
print(json.dumps(outcome))
