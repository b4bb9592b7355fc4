"""The env-credential finding: credentials under credential names whatever their type, the
value shapes of well-known credentials under any name, and passwords in health.command;
and the ordinary settings it must leave alone."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from msgen.checks import blueprint as checks
from msgen.model.blueprint import Blueprint


def found(env: dict | None = None, command: list[str] | None = None) -> list[tuple[str, str]]:
    service: dict = {"image": "example/web:1.0", "port": 8080, "env": env or {}}
    if command is not None:
        service["health"] = {"command": command}
    blueprint = Blueprint.model_validate({"version": 1, "project": "shop", "services": {"web": service}})
    return [(f.path, f.message) for f in checks.check(SimpleNamespace(blueprint=blueprint)) if f.id == "env-credential"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", 31415926535),  # an integer is a password too
        ("DB_PASSWORD", "hunter2"),
        ("db_password", "hunter2"),
        ("dbPassword", "hunter2"),
        ("DB_PASS", "hunter2"),
        ("SMTP_PASS", "hunter2"),
        ("PASSWD", "hunter2"),
        ("KEY_PASSPHRASE", "correct horse"),
        ("JWT_SIGNING_KEY", "k"),
        ("WEBHOOK_SIGNING_KEY", "k"),
        ("ENCRYPTION_KEY", "k"),
        ("DATA_ENCRYPTION_KEY", "k"),
        ("PRIVATE_KEY", "k"),
        ("CLIENT_SECRET", "s"),
        ("ACCESS_KEY", "k"),
        ("AWS_SECRET_ACCESS_KEY", "k"),
        ("AUTH", "user:pw"),
        ("REDIS_AUTH", "pw"),
        ("CREDENTIALS", "x"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "x"),
        ("API_KEY", "k"),
        ("PAYMENT_APIKEY", "k"),
        ("GITHUB_TOKEN", "t"),
        ("ACCESSTOKEN", "t"),
        ("SECRET_KEY_BASE", "s"),
        ("SESSION_KEY", "s"),
        ("PIN_PASSWORD", 1234),
    ],
)
def test_credential_names_are_flagged_whatever_the_value(name, value):
    assert found({name: value}) == [
        (
            f"services.web.env.{name}",
            f"env {name} looks like a credential (its name says it is one): its value would be committed in the generated files",
        )
    ]


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("postgres://app:hunter2@db:5432/shop", "a URL with a password"),
        ("postgres+psycopg://app:hunter2@db/shop", "a URL with a password"),
        ("redis://:hunter2@cache:6379/0", "a URL with a password"),
        ("amqp://guest:guest@rabbit", "a URL with a password"),
        ("jdbc:mysql://app:hunter2@db/shop", "a URL with a password"),
        ("--dsn=mongodb+srv://app:hunter2@cluster0.example.net/shop", "a URL with a password"),
        ("ghp_" + "a1B2" * 9, "a GitHub token"),
        ("gho_" + "a1B2" * 9, "a GitHub token"),
        ("ghu_" + "a1B2" * 9, "a GitHub token"),
        ("ghs_" + "a1B2" * 9, "a GitHub token"),
        ("ghr_" + "a1B2" * 9, "a GitHub token"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "a GitHub token"),
        ("xoxb-1234567890-0987654321-AbCdEfGh", "a Slack token"),
        ("xoxp-1234567890-0987654321-AbCdEfGh", "a Slack token"),
        ("AKIAIOSFODNN7EXAMPLE", "an AWS access key"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe key"),
        ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe key"),
        ("rk_live_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe key"),
        ("glpat-AbCdEfGhIjKlMnOpQrSt", "a GitLab token"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "a Google API key"),
        ("-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n", "a private key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", "a private key"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHc\n", "a private key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "a JSON Web Token"),
        ("Authorization: Bearer abc.def", "an Authorization header"),
    ],
)
def test_credential_values_are_flagged_under_any_name(value, shape):
    (only,) = found({"UPSTREAM": value})
    assert only == (
        "services.web.env.UPSTREAM",
        f"env UPSTREAM looks like a credential (its value is {shape}): its value would be committed in the generated files",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "info"),
        ("PORT", 8080),
        ("PORT", "8080"),
        ("UPSTREAM", "https://api.example.com/v1/payments"),
        ("UPSTREAM", "http://cache:8080/users/@me"),  # a port and a path, not a password
        ("DATABASE_URL", "postgres://app@db:5432/shop"),  # a user without a password
        ("DATABASE_URL", "postgres://app:${DB_PASSWORD}@db/shop"),  # read at run time
        ("TOKEN_TTL", 3600),
        ("ACCESS_TOKEN_TTL", "15m"),
        ("DB_PASSWORD_FILE", "/run/secrets/DB_PASSWORD"),
        ("PASSWORD_MIN_LENGTH", 12),
        ("AWS_ACCESS_KEY_ID_NAME", "payments"),
        ("AUTH_URL", "https://auth.example.com"),
        ("AUTH_ENABLED", True),
        ("DB_PASSWORD", True),  # one bit is no secret
        ("DB_PASSWORD", ""),
        ("MAX_TOKENS", 4096),
        ("TOKENIZER", "bpe"),
        ("PASS_THROUGH", "x-request-id"),
        ("BYPASS_CACHE", "true"),
        ("PWD", "/app"),
        ("PUBLIC_KEY", "ssh-ed25519 AAAA"),
        ("TLS_CERT", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
        ("SECRET_NAME", "payment-db"),
        ("RELEASE", "sk_live"),
        ("CHECKSUM", "AKIA"),
    ],
)
def test_ordinary_settings_are_not_flagged(name, value):
    assert found({name: value}) == []


@pytest.mark.parametrize(
    ("command", "index", "what"),
    [
        (["CMD", "pg_isready", "-d", "postgres://app:hunter2@localhost/shop"], 3, "a URL with a password"),
        (["curl -f https://user:hunter2@localhost:8080/health"], 0, "a URL with a password"),
        (["CMD", "curl", "-H", "Authorization: Bearer ghp_" + "a1B2" * 9, "http://localhost/h"], 3, "a GitHub token"),
        (["CMD", "app", "check", "--password=hunter2"], 3, "a password given to --password"),
        (["CMD", "app", "check", "--token", "hunter2"], 4, "a password given to --token"),
        (["CMD", "curl", "-fsS", "-u", "admin:hunter2", "http://localhost/h"], 4, "a password given to -u (user:password)"),
        (["CMD", "mysqladmin", "ping", "-uroot", "-phunter2"], 4, "a password given to -p"),
        (["CMD-SHELL", "mysqladmin ping -h 127.0.0.1 -uroot -phunter2"], 1, "a password given to -p"),
        (["CMD", "/usr/bin/mariadb-admin", "ping", "-phunter2"], 3, "a password given to -p"),
        (["CMD", "redis-cli", "-a", "hunter2", "ping"], 3, "a password given to -a"),
    ],
)
def test_credentials_in_health_command_are_flagged_at_their_element(command, index, what):
    assert found(command=command) == [
        (f"services.web.health.command[{index}]", f"health.command holds {what}: it would be committed in the generated files")
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["CMD", "curl", "-f", "http://localhost:8080/health"],
        ["CMD", "pg_isready", "-h", "localhost", "-p", "5432", "-U", "app"],
        ["CMD", "redis-cli", "-p", "6379", "ping"],
        ["CMD", "mysqladmin", "ping", "-h", "127.0.0.1", "-P", "3306"],
        ["CMD", "mysqladmin", "ping", "-p"],  # prompts: nothing written
        ["CMD-SHELL", 'mysqladmin ping -uroot -p"$MYSQL_ROOT_PASSWORD"'],
        ["CMD-SHELL", "mysqladmin ping -uroot -p$(cat /run/secrets/DB_PASSWORD)"],
        ["CMD-SHELL", 'redis-cli -a "$(cat /run/secrets/REDIS_PASSWORD)" ping'],
        ["CMD", "app", "check", "--password-file=/run/secrets/DB_PASSWORD"],
        ["CMD", "app", "check", "--token", "--verbose"],
        ["CMD-SHELL", "mysqladmin ping && pg_isready -p5432"],  # -p is the port again after &&
        ["CMD", "curl", "-u", "admin", "http://localhost/h"],
        ["NONE"],
    ],
)
def test_health_commands_without_credentials_are_not_flagged(command):
    assert found(command=command) == []


def test_the_finding_points_at_the_line_of_the_value(write_blueprint):
    text = "version: 1\nproject: shop\nservices:\n  web:\n    image: example/web:1.0\n    port: 8080\n    env:\n      LOG_LEVEL: info\n      DB_PASSWORD: 31415926535\n    health:\n      command: [CMD, mysqladmin, ping, -phunter2]\n"
    result = subprocess.run(
        [sys.executable, "-m", "msgen", "validate", str(write_blueprint(text)), "--format", "json"], capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    located = sorted((f["path"], f["line"], f["column"]) for f in json.loads(result.stdout) if f["id"] == "env-credential")
    assert located == [("services.web.env.DB_PASSWORD", 9, 7), ("services.web.health.command[3]", 11, 40)]
