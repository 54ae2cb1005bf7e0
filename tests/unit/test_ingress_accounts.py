import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from baton.store import Base, make_engine
from services.ingress import accounts
from services.ingress.errors import AccountExistsError, AccountNotFoundError


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'baton.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_add_verify_disable(engine: Engine) -> None:
    accounts.add_account(engine, "alice", "s3cret")
    assert accounts.verify(engine, "alice", "s3cret")
    assert not accounts.verify(engine, "alice", "wrong")
    assert not accounts.verify(engine, "bob", "s3cret")
    stored = accounts.list_accounts(engine)[0]
    assert stored.password_hash.startswith("$argon2id$")
    assert "s3cret" not in stored.password_hash
    accounts.disable(engine, "alice")
    assert not accounts.verify(engine, "alice", "s3cret")
    accounts.enable(engine, "alice")
    assert accounts.verify(engine, "alice", "s3cret")


def test_set_password_and_errors(engine: Engine) -> None:
    accounts.add_account(engine, "alice", "one")
    with pytest.raises(AccountExistsError):
        accounts.add_account(engine, "alice", "two")
    accounts.set_password(engine, "alice", "two")
    assert accounts.verify(engine, "alice", "two")
    assert not accounts.verify(engine, "alice", "one")
    with pytest.raises(AccountNotFoundError):
        accounts.set_password(engine, "nobody", "x")
    with pytest.raises(AccountNotFoundError):
        accounts.disable(engine, "nobody")
    with pytest.raises(ValueError, match="empty"):
        accounts.add_account(engine, "carol", "")


def test_cli(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert accounts.cli(["add", "alice", "--password-stdin"], engine=engine, stdin=io.StringIO("pw1\n")) == 0
    assert accounts.verify(engine, "alice", "pw1")
    assert accounts.cli(["add", "alice", "--password-stdin"], engine=engine, stdin=io.StringIO("x\n")) == 1
    assert "already exists" in capsys.readouterr().err
    assert accounts.cli(["disable", "alice"], engine=engine) == 0
    out = io.StringIO()
    assert accounts.cli(["list"], engine=engine, stdout=out) == 0
    assert out.getvalue().startswith("alice\tdisabled\t")
    assert accounts.cli(["disable", "nobody"], engine=engine) == 1
    assert accounts.cli(["frobnicate"], engine=engine) == 2
    capsys.readouterr()
