"""What a credential looks like: a variable name that says it holds one, a value shaped like
one, a command line that passes one. The env-credential finding and `msgen import` (which turns
such values into secrets) recognise credentials by the same rules."""

from __future__ import annotations

import re
import shlex
from itertools import pairwise

# --- env-credential ---------------------------------------------------------------------------
# Names are split into words at '_' and upper-cased (db_password, DB_PASSWORD, dbPassword).
# A word that names a credential, also at the end of a longer word (DBPASSWORD, GITHUBTOKEN):
_SECRET_WORDS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
    "PRIVATEKEY",
    "ACCESSKEY",
)
# two words that name a key used as a credential (API_KEY, JWT_SIGNING_KEY, AWS_ACCESS_KEY)
_SECRET_PAIRS = frozenset(
    (first, "KEY") for first in ("API", "ACCESS", "PRIVATE", "SIGNING", "ENCRYPTION", "DECRYPTION", "MASTER", "SESSION", "HMAC", "JWT")
)
# short words that are a credential only as the name's last word: DB_PASS and REDIS_AUTH, but
# not PASS_THROUGH or AUTH_URL
_SECRET_LAST = frozenset({"PASS", "PWD", "AUTH", "CREDS"})
# a last word saying the value is about a credential, not the credential: DB_PASSWORD_FILE
# (where the secret is mounted), TOKEN_TTL, PASSWORD_MIN_LENGTH, AWS_ACCESS_KEY_ID
_ABOUT_A_SECRET = frozenset(
    {
        "FILE", "PATH", "DIR", "TTL", "EXPIRY", "EXPIRES", "EXPIRATION", "LIFETIME", "TIMEOUT", "LENGTH", "SIZE",
        "ALGORITHM", "HEADER", "ISSUER", "AUDIENCE", "URL", "ENDPOINT", "HOST", "PORT", "ENABLED", "DISABLED",
        "REQUIRED", "POLICY", "TYPE", "MODE", "PROVIDER", "USER", "USERNAME", "NAME", "ID",
    }
)  # fmt: skip

# value shapes that are credentials whatever the name: a URL with a password (any scheme,
# `postgres+psycopg` too, an empty user as in redis://:pw@host; a port before a path is not a
# password, nor is $VAR, which is read at run time), the prefixes of well-known tokens, a
# private key in PEM, a JSON Web Token, an Authorization header with its credentials
_CREDENTIAL_SHAPES = (
    ("a URL with a password", re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:(?![0-9]*[/?#])(?!\$)[^\s@]+@")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Stripe key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{8,}")),
    ("a GitLab token", re.compile(r"\bglpat-[0-9A-Za-z_-]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("an Authorization header", re.compile(r"(?i)\bauthorization:\s*(?:bearer|basic|token)\s+[^\s$]")),
)
# command-line options that take a password or token, as `--password=X` or `--password X`
_SECRET_OPTIONS = frozenset(
    {"--password", "--pass", "--passwd", "--http-password", "--http-passwd", "--token", "--secret", "--api-key", "--apikey", "--auth"}
)
# options that take `user:password` (curl -u, --user)
_USER_OPTIONS = frozenset({"-u", "--user", "--proxy-user"})
_SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|"})
# programs whose short option takes a password: mysql -pX (-P is the port there), redis-cli -a X
_PASSWORD_FLAG = {
    "mysql": "-p", "mysqladmin": "-p", "mysqlcheck": "-p", "mysqldump": "-p", "mariadb": "-p", "mariadb-admin": "-p",
    "mariadb-check": "-p", "redis-cli": "-a", "valkey-cli": "-a",
}  # fmt: skip


def credential_name(name: str) -> bool:
    """True when an env variable's name says its value is a credential (see docs/checks.md)."""
    words = [word for word in name.upper().split("_") if word]
    if not words or words[-1] in _ABOUT_A_SECRET or name.upper() == "PWD":  # PWD alone is the working directory
        return False
    if words[-1] in _SECRET_LAST:
        return True
    if any(word.endswith(_SECRET_WORDS) for word in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in pairwise(words))


def credential_shape(text: str) -> str | None:
    """What kind of credential `text` holds, or None."""
    for kind, pattern in _CREDENTIAL_SHAPES:
        if pattern.search(text):
            return kind
    return None


def _given(value: str) -> bool:
    """A value written out, not read from the environment or a file at run time ($X, ${X}, $(cat ...))."""
    return bool(value) and not value.startswith("$")


def command_credential(command: list[str]) -> tuple[int, str] | None:
    """(index of the element, what it holds) for the first credential in a health command."""
    tokens: list[tuple[int, str]] = []
    for index, element in enumerate(command):
        kind = credential_shape(element)
        if kind is not None:
            return index, kind
        try:
            words = shlex.split(element)
        except ValueError:  # an unbalanced quote: the shell would refuse it too, the words still tell
            words = element.split()
        tokens.extend((index, word) for word in words)
    flag = None
    for position, (index, word) in enumerate(tokens):
        option, equals, value = word.partition("=")
        # the value of `--option=value`, else the next word (located at the element holding it)
        at, given = (index, value) if equals else tokens[position + 1] if position + 1 < len(tokens) else (index, "")
        if option in _SECRET_OPTIONS and _given(given) and not (not equals and given.startswith("-")):
            return at, f"a password given to {option}"
        if option in _USER_OPTIONS and _given(given.partition(":")[2]):
            return at, f"a password given to {option} (user:password)"
        program = word.rsplit("/", 1)[-1]
        if word in _SHELL_SEPARATORS:
            flag = None
        elif program in _PASSWORD_FLAG:
            flag = _PASSWORD_FLAG[program]
        elif flag is not None and word.startswith(flag) and _given(word[len(flag) :]):
            return index, f"a password given to {flag}"
        elif flag == "-a" and word == "-a" and _given(given):
            return at, "a password given to -a"
    return None
