"""SMTP AUTH accounts: argon2id hashes in the ``accounts`` table, and the ``baton accounts`` command.

These functions block (database and argon2, tens of milliseconds of CPU); the SMTP server calls
``verify`` in a worker thread, never on the event loop.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.store import Account
from services.ingress.errors import AccountError, AccountExistsError, AccountNotFoundError

# argon2-cffi's defaults are argon2id with the RFC 9106 "low memory" parameters.
_hasher = PasswordHasher()
# Verified when the user does not exist, so a probe cannot tell unknown users by the answer time.
_DUMMY_HASH = _hasher.hash("baton-no-such-user")


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("empty password")
    return _hasher.hash(password)


def add_account(engine: Engine, username: str, password: str) -> None:
    """Create an enabled account; raise ``AccountExistsError`` if the name is taken."""
    if not username or any(c.isspace() for c in username):
        raise AccountError(username, "username must be non-empty without whitespace")
    password_hash = hash_password(password)
    with Session(engine) as session:
        if session.scalar(select(Account.id).where(Account.username == username)) is not None:
            raise AccountExistsError(username)
        session.add(Account(username=username, password_hash=password_hash))
        try:
            session.commit()
        except IntegrityError as exc:  # another writer added it between the check and the insert
            raise AccountExistsError(username) from exc


def set_password(engine: Engine, username: str, password: str) -> None:
    password_hash = hash_password(password)
    with Session(engine) as session:
        account = _get(session, username)
        account.password_hash = password_hash
        session.commit()


def disable(engine: Engine, username: str) -> None:
    """Refuse AUTH for the account from now on (the row stays for the audit trail)."""
    _set_disabled(engine, username, True)


def enable(engine: Engine, username: str) -> None:
    _set_disabled(engine, username, False)


def _set_disabled(engine: Engine, username: str, disabled: bool) -> None:
    with Session(engine) as session:
        _get(session, username).disabled = disabled
        session.commit()


def _get(session: Session, username: str) -> Account:
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise AccountNotFoundError(username)
    return account


def list_accounts(engine: Engine) -> list[Account]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Account).order_by(Account.username)))


def verify(engine: Engine, username: str, password: str) -> bool:
    """True if the account exists, is enabled and ``password`` matches. Blocking; run in a thread."""
    with Session(engine) as session:
        account = session.scalar(select(Account).where(Account.username == username))
        if account is None or account.disabled:
            _verify_hash(_DUMMY_HASH, password)
            return False
        if not _verify_hash(account.password_hash, password):
            return False
        if _hasher.check_needs_rehash(account.password_hash):
            # Parameters were raised since this hash was made; upgrade it while we know the password.
            account.password_hash = _hasher.hash(password)
            session.commit()
        return True


def _verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- baton accounts ... ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton accounts", description="Manage SMTP AUTH accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = commands.add_parser("set-password", help="change an account's password")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    commands.add_parser("list", help="list accounts")
    for name, text in (("disable", "refuse AUTH for an account"), ("enable", "allow AUTH again")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("username")
    return parser


def _read_password(from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValueError("passwords do not match")
    return first


def cli(
    argv: list[str],
    *,
    engine: Engine | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """``baton accounts ARGV...`` (``argv`` excludes the word ``accounts``); returns the exit code.

    ``engine`` defaults to the one for ``BATON_DATABASE_URL``; tests pass their own.
    """
    out = stdout or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage
        return int(exc.code or 0)
    if engine is None:
        from baton.settings import load_settings
        from baton.store import make_engine

        engine = make_engine(load_settings().database_url)
    try:
        if args.command == "add":
            add_account(engine, args.username, _read_password(args.password_stdin, stdin or sys.stdin))
        elif args.command == "set-password":
            set_password(engine, args.username, _read_password(args.password_stdin, stdin or sys.stdin))
        elif args.command == "disable":
            disable(engine, args.username)
        elif args.command == "enable":
            enable(engine, args.username)
        else:
            for account in list_accounts(engine):
                state = "disabled" if account.disabled else "enabled"
                print(f"{account.username}\t{state}\t{account.created_at.isoformat()}", file=out)
    except (AccountError, ValueError) as exc:
        print(f"baton accounts: {exc}", file=sys.stderr)
        return 1
    return 0
