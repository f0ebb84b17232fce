"""A SQLite sandbox of a small, realistic igny8 with one known defect of every kind."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from importlib import resources
from pathlib import Path

from igny8ctl.errors import ConfigError

DEFAULT_PATH = Path("igny8ctl-demo.sqlite3")
MARKER_TABLE = "igny8ctl_demo"
NOW = "2025-12-10 09:00:00"
DANGLING_ACCOUNT_ID = 999

PLANS = [  # slug, name, monthly credits, max users
    ("free", "Free", 100, 1),
    ("starter", "Starter", 2_000, 3),
    ("pro", "Pro", 10_000, 10),
]

# slug, name, plan, status, credits
ACCOUNTS = [
    ("aws-admin", "igny8 System", "pro", "active", 1_000_000),
    ("acme-seo", "Acme SEO Agency", "pro", "active", 8_200),
    ("bluefin-media", "Bluefin Media", "starter", "active", 1_450),
    ("cedar-dental", "Cedar Dental Group", "free", "trial", 60),
    ("driftwood-travel", "Driftwood Travel Co", "starter", "active", 900),
    ("ghost-labs", "Ghost Labs", "free", "suspended", 0),
]

# username, first, last, role, account slug (None: orphan; "#dangling": missing account)
USERS = [
    ("system-bot", "igny8", "Bot", "system_bot", "aws-admin"),
    ("maya.patel", "Maya", "Patel", "owner", "acme-seo"),
    ("liam.chen", "Liam", "Chen", "editor", "acme-seo"),
    ("sofia.rossi", "Sofia", "Rossi", "viewer", "acme-seo"),
    ("noah.kim", "Noah", "Kim", "owner", "bluefin-media"),
    ("emma.jones", "Emma", "Jones", "editor", "bluefin-media"),
    ("dr.ortiz", "Elena", "Ortiz", "owner", "cedar-dental"),
    ("sam.okafor", "Sam", "Okafor", "owner", "driftwood-travel"),
    ("ava.berg", "Ava", "Berg", "admin", "driftwood-travel"),
    # orphans: signed up while registration skipped account creation
    ("nina.volkova", "Nina", "Volkova", "owner", None),
    ("tom.hughes", "Tom", "Hughes", "editor", None),
    ("jules.martin", "Jules", "Martin", "viewer", None),
    # dangling: their account row was deleted by hand during the incident
    ("kai.tanaka", "Kai", "Tanaka", "owner", "#dangling"),
    ("lena.fischer", "Lena", "Fischer", "editor", "#dangling"),
]

OWNERS = {  # account slug -> owner username; bluefin's owner row is gone, driftwood's is wrong
    "aws-admin": "system-bot",
    "acme-seo": "maya.patel",
    "cedar-dental": "dr.ortiz",
    "driftwood-travel": "liam.chen",
    "ghost-labs": "nina.volkova",
}
MISSING_OWNER_ID = 4242

SITES = [  # account slug, name, domain
    ("acme-seo", "Acme Blog", "blog.acme-seo.com"),
    ("acme-seo", "Acme Tools", "tools.acme-seo.com"),
    ("bluefin-media", "Bluefin Home", "bluefin.media"),
    ("cedar-dental", "Cedar Dental", "cedardental.com"),
    ("driftwood-travel", "Driftwood Journal", "driftwood.travel"),
]

KEYWORDS: dict[str, list[tuple[str, int, str]]] = {  # site domain -> (keyword, volume, intent)
    "blog.acme-seo.com": [
        ("keyword research tool", 14800, "commercial"),
        ("free keyword research tool", 9900, "commercial"),
        ("how to do keyword research", 6600, "informational"),
        ("keyword research for beginners", 1900, "informational"),
        ("long tail keywords examples", 2400, "informational"),
        ("what are long tail keywords", 1600, "informational"),
        ("on page seo checklist", 3600, "informational"),
        ("on page seo factors", 2900, "informational"),
        ("technical seo audit", 2400, "commercial"),
        ("technical seo checklist", 1900, "informational"),
        ("link building strategies", 4400, "informational"),
        ("how to build backlinks", 5400, "informational"),
        ("buy backlinks", 2900, "transactional"),
        ("local seo tips", 1300, "informational"),
        ("google business profile optimization", 2400, "informational"),
    ],
    "tools.acme-seo.com": [
        ("serp checker", 6600, "commercial"),
        ("rank tracker", 8100, "commercial"),
        ("free rank tracker", 2900, "commercial"),
        ("backlink checker", 12100, "commercial"),
        ("free backlink checker", 6600, "commercial"),
        ("domain authority checker", 9900, "commercial"),
        ("site audit tool", 1600, "commercial"),
        ("meta description generator", 1300, "transactional"),
    ],
    "bluefin.media": [
        ("video marketing strategy", 2900, "informational"),
        ("youtube seo tips", 3600, "informational"),
        ("how to grow a youtube channel", 8100, "informational"),
        ("podcast marketing ideas", 880, "informational"),
        ("how to start a podcast", 12100, "informational"),
        ("best podcast microphone", 6600, "commercial"),
        ("social media content calendar", 4400, "informational"),
        ("instagram reels ideas", 5400, "informational"),
        ("tiktok marketing for small business", 1900, "informational"),
        ("influencer marketing agency", 3600, "commercial"),
    ],
    "cedardental.com": [
        ("teeth whitening cost", 9900, "commercial"),
        ("professional teeth whitening", 3600, "commercial"),
        ("at home teeth whitening", 4400, "commercial"),
        ("dental implants cost", 22200, "commercial"),
        ("are dental implants worth it", 2400, "informational"),
        ("invisalign vs braces", 6600, "commercial"),
        ("invisalign cost", 18100, "commercial"),
        ("emergency dentist near me", 27100, "navigational"),
        ("root canal recovery time", 5400, "informational"),
        ("how long does a root canal take", 4400, "informational"),
        ("wisdom teeth removal recovery", 8100, "informational"),
        ("dry socket symptoms", 12100, "informational"),
    ],
    "driftwood.travel": [
        ("cheap flights to lisbon", 4400, "transactional"),
        ("things to do in lisbon", 33100, "informational"),
        ("lisbon travel guide", 2900, "informational"),
        ("best time to visit portugal", 6600, "informational"),
        ("porto vs lisbon", 2400, "informational"),
        ("things to do in kyoto", 27100, "informational"),
        ("kyoto travel itinerary", 3600, "informational"),
        ("best time to visit japan", 14800, "informational"),
        ("japan rail pass worth it", 5400, "commercial"),
        ("travel insurance for europe", 2900, "commercial"),
        ("carry on packing list", 4400, "informational"),
        ("packing list for europe", 3600, "informational"),
    ],
}

CLUSTERS = [  # site domain, cluster name, its keywords
    ("blog.acme-seo.com", "Keyword research",
     ["keyword research tool", "free keyword research tool", "how to do keyword research"]),
    ("blog.acme-seo.com", "Link building", ["link building strategies", "how to build backlinks"]),
    ("cedardental.com", "Teeth whitening",
     ["teeth whitening cost", "professional teeth whitening"]),
    ("driftwood.travel", "Lisbon", ["things to do in lisbon", "lisbon travel guide"]),
    ("bluefin.media", "Podcasting", ["how to start a podcast", "best podcast microphone"]),
]

OPENAI_SETTINGS = {  # account slug -> config; the other tenants rely on the system fallback
    "aws-admin": {"api_key": "sk-demo-system-0000000000000000", "model": "gpt-4o-mini",
                  "temperature": 0.2, "max_tokens": 4000},
    "acme-seo": {"api_key": "sk-demo-acme-0000000000000000", "model": "gpt-4o-mini",
                 "temperature": 0.3, "max_tokens": 4000},
}


def create_demo_database(path: Path, force: bool = False) -> Path:
    """Create the sandbox at ``path``, replacing an earlier demo but never another file.

    The database is built beside ``path`` and renamed into place, so an interrupted demo
    leaves nothing half-made, and only a regular file is ever replaced.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"{path} exists and is not a regular file; choose another path",
                          key="PATH")
    if path.exists() and not force and not _is_demo(path):
        raise ConfigError(f"{path} exists and is not an igny8ctl demo database; "
                          "choose another path or pass --force", key="PATH")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"cannot create {path}: directory {parent} does not exist",
                          key="PATH")
    ddl = resources.files("igny8ctl.schema").joinpath("sqlite.sql").read_text()
    try:
        descriptor, temporary = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
    except OSError as error:
        raise ConfigError(f"cannot create {path}: {error.strerror}", key="PATH") from None
    os.close(descriptor)
    try:
        connection = sqlite3.connect(temporary)
        try:
            connection.executescript(ddl)
            with connection:
                _seed(connection)
        finally:
            connection.close()
        os.replace(temporary, path)
    except (OSError, sqlite3.Error) as error:
        raise ConfigError(f"cannot create {path}: {error}", key="PATH") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def _is_demo(path: Path) -> bool:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MARKER_TABLE,)
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return False
    return found is not None


def _insert(connection: sqlite3.Connection, table: str, row: dict[str, object]) -> int:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = connection.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                tuple(row.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _seed(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE {MARKER_TABLE} (created_at datetime NOT NULL)")
    db.execute(f"INSERT INTO {MARKER_TABLE} VALUES (?)", (NOW,))
    plans = {
        slug: _insert(db, "igny8_core_auth_plan", {
            "name": name, "slug": slug, "monthly_credits": credits, "max_users": max_users,
            "is_active": 1})
        for slug, name, credits, max_users in PLANS
    }
    accounts = {
        slug: _insert(db, "igny8_core_auth_account", {
            "name": name, "slug": slug, "credits": credits, "status": status,
            "created_at": NOW, "updated_at": NOW, "owner_id": None, "plan_id": plans[plan]})
        for slug, name, plan, status, credits in ACCOUNTS
    }
    users = {}
    for username, first, last, role, account in USERS:
        account_id = DANGLING_ACCOUNT_ID if account == "#dangling" else (
            accounts[account] if account else None)
        users[username] = _insert(db, "igny8_core_auth_user", {
            "password": "!unusable", "last_login": None, "is_superuser": 0,
            "username": username, "first_name": first, "last_name": last,
            "email": f"{username}@example.com", "is_staff": int(role == "system_bot"),
            "is_active": 1, "date_joined": NOW, "role": role, "account_id": account_id})
    for slug, username in OWNERS.items():
        db.execute("UPDATE igny8_core_auth_account SET owner_id = ? WHERE id = ?",
                   (users[username], accounts[slug]))
    db.execute("UPDATE igny8_core_auth_account SET owner_id = ? WHERE id = ?",
               (MISSING_OWNER_ID, accounts["bluefin-media"]))

    sites = {
        domain: (_insert(db, "igny8_core_auth_site", {
            "name": name, "domain": domain, "is_active": 1, "created_at": NOW,
            "account_id": accounts[slug]}), accounts[slug])
        for slug, name, domain in SITES
    }
    keywords: dict[tuple[str, str], int] = {}
    for domain, rows in KEYWORDS.items():
        site_id, account_id = sites[domain]
        for keyword, volume, intent in rows:
            keywords[domain, keyword] = _insert(db, "planner_keywords", {
                "keyword": keyword, "volume": volume, "difficulty": min(95, volume // 400 + 12),
                "intent": intent, "status": "pending", "created_at": NOW, "updated_at": NOW,
                "account_id": account_id, "cluster_id": None, "site_id": site_id})
    volumes = {(d, k): v for d, rows in KEYWORDS.items() for k, v, _ in rows}
    clusters = {}
    for domain, name, members in CLUSTERS:
        site_id, account_id = sites[domain]
        clusters[name] = _insert(db, "planner_clusters", {
            "name": name, "description": f"Keywords about {name.lower()}",
            "keywords_count": len(members), "volume": sum(volumes[domain, k] for k in members),
            "status": "active", "created_at": NOW, "updated_at": NOW,
            "account_id": account_id, "site_id": site_id})
        for keyword in members:
            db.execute("UPDATE planner_keywords SET cluster_id = ?, status = 'clustered' "
                       "WHERE id = ?", (clusters[name], keywords[domain, keyword]))

    # Defects beyond the users: a stale count, and links that cross tenants.
    db.execute("UPDATE planner_clusters SET keywords_count = 7, volume = 1 WHERE id = ?",
               (clusters["Lisbon"],))
    db.execute("UPDATE planner_keywords SET cluster_id = ?, status = 'clustered' WHERE id = ?",
               (clusters["Podcasting"], keywords["blog.acme-seo.com", "local seo tips"]))
    db.execute("UPDATE planner_clusters SET keywords_count = keywords_count + 1, "
               "volume = volume + 1300 WHERE id = ?", (clusters["Podcasting"],))
    db.execute("UPDATE planner_keywords SET site_id = ? WHERE id = ?",
               (sites["bluefin.media"][0], keywords["driftwood.travel", "carry on packing list"]))
    db.execute("UPDATE planner_clusters SET site_id = ? WHERE id = ?",
               (sites["cedardental.com"][0], clusters["Link building"]))

    for slug, config in OPENAI_SETTINGS.items():
        _insert(db, "system_integrationsettings", {
            "integration_type": "openai", "config": json.dumps(config), "is_active": 1,
            "created_at": NOW, "updated_at": NOW, "account_id": accounts[slug]})
