"""A private Postfix instance for the bench: its own config, queue and log under a temp directory.

    with PostfixRelay(smtp_port=..., routes={"d0.bench": "127.0.0.2"}, sink_port=...) as postfix:
        ... submit to 127.0.0.1:postfix.smtp_port ...

Everything goes through ``postfix -c DIR``, so the system's own instance (``/etc/postfix``, port 25,
``/var/spool/postfix``) is never read, started or stopped. smtpd listens only on 127.0.0.1 at the given
port (master.cf has no ``smtp inet`` line, so nothing listens on 25); every bench domain is relayed
to the sink by ``transport_maps`` with bracketed IP literals, so the smtp client does no DNS at all;
there is no local delivery.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

POSTFIX = "postfix"
INSTALL_COMMAND = (
    "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y postfix"
)


def postfix_unavailable() -> str | None:
    """Why Postfix cannot be run here, or None."""
    if shutil.which(POSTFIX) is None and not Path("/usr/sbin/postfix").exists():
        return f"Postfix is not installed; as root: {INSTALL_COMMAND}"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    return None


def install() -> None:
    """Install Debian's postfix without configuring (or starting) the system instance."""
    subprocess.run(["sh", "-c", INSTALL_COMMAND], check=True, stdout=subprocess.DEVNULL)


# No chroot (the temp directory has no chroot jail), no "smtp inet" (port 25), no local delivery.
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {maillog}
maillog_file_prefixes = {maillog}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.localhost
mydomain = bench.localhost
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Relay only: no local delivery, no aliases, no local recipients.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled in the bench
alias_maps =
alias_database =
biff = no
relay_domains = {domains}
transport_maps = inline:{{ {transport} }}
# No DNS anywhere: destinations are IP literals, and client names are not looked up.
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
# Fairness with Baton (which keeps connections per MX host and many messages in flight): more
# parallel deliveries per destination than the default 20, and long-lived daemon processes
# (max_use and max_idle), which also keeps per-daemon CPU visible to the sampler.
default_destination_concurrency_limit = {concurrency}
initial_destination_concurrency = {concurrency}
default_process_limit = {process_limit}
smtpd_client_connection_count_limit = 0
smtp_connection_cache_on_demand = yes
max_use = 1000000
max_idle = 600
"""


class PostfixError(RuntimeError):
    pass


class PostfixRelay:
    def __init__(
        self,
        smtp_port: int,
        routes: Mapping[str, str],
        sink_port: int,
        *,
        concurrency: int = 50,
        base_dir: str | None = None,
        keep_log: Path | None = None,
    ) -> None:
        if smtp_port == 25:
            raise ValueError("the bench never listens on port 25")
        self.smtp_port = smtp_port
        self.routes = dict(routes)
        self.sink_port = sink_port
        self.concurrency = concurrency
        self.base_dir = base_dir
        # Where the maillog is copied before the temp directory is deleted.
        self.keep_log = keep_log
        self.dir: Path | None = None

    @property
    def config_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "etc"

    @property
    def queue_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "queue"

    @property
    def maillog(self) -> Path:
        assert self.dir is not None
        return self.dir / "maillog"

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args], capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)}: {(result.stdout + result.stderr).strip()}")
        return result

    def write_config(self) -> None:
        # Postfix insists that the queue directory and its parents are root-owned and not writable
        # by others, so the directory is made (mode 0755) rather than using a sticky /tmp directly.
        self.dir = Path(tempfile.mkdtemp(prefix="baton-bench-postfix-", dir=self.base_dir))
        self.dir.chmod(0o755)
        self.config_dir.mkdir()
        (self.dir / "data").mkdir()
        self.queue_dir.mkdir()
        shutil.chown(self.dir / "data", "postfix")
        transport = ", ".join(f"{d}=smtp:[{a}]:{self.sink_port}" for d, a in self.routes.items())
        (self.config_dir / "main.cf").write_text(
            _MAIN_CF.format(
                queue=self.queue_dir,
                data=self.dir / "data",
                maillog=self.maillog,
                domains=", ".join(self.routes),
                transport=transport,
                concurrency=self.concurrency,
                process_limit=max(100, 2 * self.concurrency + 10),
            )
        )
        (self.config_dir / "master.cf").write_text(_MASTER_CF.format(port=self.smtp_port))

    def start(self, timeout_s: float = 30.0) -> None:
        self.write_config()
        self._postfix("check")
        self._postfix("start")
        deadline = time.monotonic() + timeout_s
        while self.master_pid() is None:
            if time.monotonic() > deadline:
                raise PostfixError(f"master did not start; see {self.maillog}")
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def stop(self) -> None:
        if self.dir is None:
            return
        pid = self.master_pid()
        if pid is not None:
            self._postfix("stop", check=False)
            deadline = time.monotonic() + 15
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                self._postfix("abort", check=False)
                time.sleep(1)
        if self.keep_log is not None:
            with contextlib.suppress(OSError):
                shutil.copy(self.maillog, self.keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> PostfixRelay:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
