"""A throw-away single-node SLURM cluster (slurmctld + slurmd + munged) for tests.

Standard library only.  Usage::

    from tests.helpers.slurm_cluster import local_slurm_cluster, slurm_missing_reason

    if (why := slurm_missing_reason()) is not None:
        pytest.skip(why)
    with local_slurm_cluster(tmp_path / "slurm", n_gpus=2) as cluster:
        subprocess.run(
            [sys.executable, "-m", "snakemake", *targets,  # targets BEFORE --default-resources
             "--executor", "slurm", "--jobs", "2",
             "--slurm-status-command", "squeue",  # no accounting: sacct would hang the run
             "--slurm-init-seconds-before-status-checks", "1",
             "--default-resources", f"slurm_partition={cluster.partition}"],
            env=cluster.client_env(),  # os.environ + cluster.env, minus SLURM_*/CUDA_VISIBLE_DEVICES
            cwd=workflow_dir, check=True)

Everything lives below ``workdir`` (configs, state, logs, fake GPU device
nodes, munge key) plus one short-named directory under /tmp for UNIX sockets
(munge socket, slurmd spool: socket paths are limited to 108 bytes and pytest's
``tmp_path`` can be longer).  The daemons listen on free TCP ports picked at
start-up, use their own munge socket (``AuthInfo=socket=...``) and never touch
/etc/slurm or /etc/munge, so the fixture can coexist with a system SLURM.

Needs root: slurmd has to run as root to launch jobs, and ``mknod`` for the
fake GPUs.  See tests/helpers/SLURM_NOTES.md for the snakemake side.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "REQUIRED_BINARIES",
    "SlurmCluster",
    "SlurmClusterError",
    "local_slurm_cluster",
    "slurm_missing_reason",
]

REQUIRED_BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "scontrol", "munged")
# Client commands for which a wrapper that pins SLURM_CONF is put on PATH
# (see _write_client_wrappers for why srun needs it).
_CLIENT_WRAPPERS = ("srun", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "salloc", "sacct")
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_INSTALL_HINT = "run .ci/install-slurm.sh (needs root and apt)"

CLUSTER_NAME = "nnrds"
PARTITION = "debug"


class SlurmClusterError(RuntimeError):
    """The local SLURM cluster could not be started (message carries log tails)."""


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:  # /usr/sbin is often not on a non-login PATH
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def slurm_missing_reason() -> str | None:
    """None if a local cluster can be started here, else a human-readable reason."""
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return f"slurm-wlm/munge not installed (missing: {', '.join(missing)}): {_INSTALL_HINT}"
    if os.geteuid() != 0:
        return "local SLURM test cluster needs root (slurmd runs jobs as root, mknod for fake GPUs)"
    return None


@dataclass
class SlurmCluster:
    """Handle for a running cluster (yielded by :func:`local_slurm_cluster`)."""

    workdir: Path
    conf: Path
    partition: str
    nodename: str
    n_gpus: int
    cpus: int
    real_memory_mb: int
    env: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run a client command (sbatch, squeue, ...) against this cluster."""
        env = {**os.environ, **self.env, **kw.pop("env", {})}
        return subprocess.run(list(cmd), env=env, check=check, timeout=timeout, text=True, capture_output=True, **kw)

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) + this cluster's env, minus SLURM job context."""
        env = dict(os.environ if base is None else base)
        for k in list(env):
            # a caller inside a SLURM job (or with GPUs) would leak these into jobs
            if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) or k == "CUDA_VISIBLE_DEVICES":
                del env[k]
        env.update(self.env)
        return env

    def node_state(self) -> str:
        return _node_state(self.env, self.nodename)

    def log_tails(self, n: int = 40) -> str:
        return _log_tails(self.logs, n)


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_free_ports() -> tuple[int, int]:
    a = _free_port()
    for _ in range(50):
        b = _free_port()
        if b != a:
            return a, b
    raise SlurmClusterError("could not find two free TCP ports")


def _mem_total_mb() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<unreadable: {exc}>"
    return "\n".join(lines[-n:]) if lines else "<empty>"


def _log_tails(logs: dict[str, Path], n: int = 40) -> str:
    parts = []
    for name, path in logs.items():
        if path.exists():
            parts.append(f"----- {name} ({path}), last {n} lines -----\n{_tail(path, n)}")
    return "\n".join(parts) if parts else "<no logs written>"


def _node_state(env: dict[str, str], nodename: str) -> str:
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-n", nodename, "-o", "%t"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"<sinfo failed: {exc}>"
    if out.returncode != 0:
        return f"<sinfo rc={out.returncode}: {out.stderr.strip()}>"
    return out.stdout.strip() or "<no node>"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still "exists"; treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stepd_pids(conf: Path) -> list[int]:
    """slurmstepd processes that belong to *this* cluster.

    slurmstepd double-forks away from slurmd, so it is not in slurmd's process
    group; it inherits slurmd's environment though, which carries our SLURM_CONF.
    """
    marker = f"SLURM_CONF={conf}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", "rb") as fh:
                if not fh.read().startswith(b"slurmstepd"):
                    continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _with_descendants(pids: list[int]) -> list[int]:
    """``pids`` plus all their (transitive) children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def _kill_stepds(conf: Path) -> None:
    """SIGKILL this cluster's slurmstepds and the job processes below them.

    slurmstepd ignores SIGTERM; its job's processes would be orphaned if it
    were killed alone, so collect the whole tree first.
    """
    pids = _stepd_pids(conf)
    if pids:
        tree = _with_descendants(pids)
        for pid in reversed(tree):  # children first
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_pid_alive(p) for p in tree):
            time.sleep(0.1)


def _terminate(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM the process group we started, then SIGKILL if needed; reap it."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)  # started with start_new_session=True: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the daemon when the process that started it dies.

    Covers the case where our ``finally`` never runs (parent SIGKILLed, CI
    timeout).  Note: Linux ties PDEATHSIG to the *thread* that forked, so enter
    the context manager from a thread that outlives the cluster (e.g. main).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # best effort only
        pass


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the cluster runs, so cleanup happens."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def _handler(signum, frame):
        raise SystemExit(128 + signum)

    prev = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, prev)


def _write_client_wrappers(bindir: Path, conf: Path) -> None:
    """Put SLURM_CONF-pinning wrappers for the client commands on PATH.

    Needed because snakemake-executor-plugin-slurm-jobstep (inside the batch
    job) strips every SLURM_* variable -- SLURM_CONF included -- from the
    environment of the ``srun`` it launches, so a bare srun would look for
    /etc/slurm/slurm.conf and fail ("Could not establish a configuration
    source").  The batch job gets PATH via ``sbatch --export=ALL``.
    """
    bindir.mkdir(parents=True, exist_ok=True)
    for name in _CLIENT_WRAPPERS:
        real = _which(name)
        if real is None:
            continue
        script = bindir / name
        script.write_text(
            "#!/bin/sh\n"
            "# generated by tests/helpers/slurm_cluster.py: pin this test cluster's config\n"
            f"SLURM_CONF={shlex.quote(str(conf))}\nexport SLURM_CONF\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        script.chmod(0o755)


# --------------------------------------------------------------------------- main API


@contextlib.contextmanager
def local_slurm_cluster(
    workdir: Path,
    n_gpus: int = 2,
    *,
    start_timeout: float = 60.0,
    partition: str = PARTITION,
    debug_level: str = "info",
) -> Iterator[SlurmCluster]:
    """Start munged + slurmctld + slurmd for the local host; stop them on exit.

    Yields a :class:`SlurmCluster` (``.partition``, ``.env``, ``.conf``, ...).
    ``.env`` holds what clients need: SLURM_CONF, and PATH with wrappers for
    the SLURM client commands prepended (required for srun inside jobs).
    Raises :class:`SlurmClusterError` with daemon log tails if the node does
    not become idle within ``start_timeout`` seconds.  On exit (also on an
    exception or SIGTERM) jobs are cancelled, all daemons it started are
    killed and the socket directory is removed; ``workdir`` (configs, logs)
    is left for inspection and wiped on the next start.
    """
    reason = slurm_missing_reason()
    if reason is not None:
        raise SlurmClusterError(reason)
    # short path for UNIX sockets (munge socket, slurmstepd sockets in spool):
    # sun_path is limited to 108 bytes, pytest's tmp_path can be longer
    rundir = Path(tempfile.mkdtemp(prefix="nnrds-slurm-", dir="/tmp"))
    try:
        with (
            _sigterm_as_exit(),
            _cluster(Path(workdir), rundir, n_gpus, start_timeout, partition, debug_level) as cluster,
        ):
            yield cluster
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


@contextlib.contextmanager
def _cluster(
    workdir: Path, rundir: Path, n_gpus: int, start_timeout: float, partition: str, debug_level: str
) -> Iterator[SlurmCluster]:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    etc, logdir, statedir, devdir, bindir, mungedir = (
        workdir / n for n in ("etc", "log", "state", "dev", "bin", "munge")
    )
    conf = etc / "slurm.conf"
    # leftovers of a previous run in this workdir whose owner was SIGKILLed
    # (daemons die with their parent via PDEATHSIG, job steps do not)
    _kill_stepds(conf)
    stale_rundir = workdir / "rundir"
    with contextlib.suppress(OSError):
        old = Path(stale_rundir.read_text().strip())
        if old.parent == rundir.parent and old.name.startswith("nnrds-slurm-") and old != rundir:
            shutil.rmtree(old, ignore_errors=True)
    stale_rundir.write_text(f"{rundir}\n")
    # wipe stale state/pid/log files from a previous run in the same workdir
    for d in (etc, logdir, statedir, devdir, bindir, mungedir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for d in (etc, mungedir, statedir):
        d.chmod(0o700)
    spool = rundir / "spool"
    spool.mkdir()
    munge_socket = rundir / "munge.sock"

    nodename = socket.gethostname().split(".")[0]  # == `hostname -s`
    cpus = os.cpu_count() or 1
    try:
        cpus = len(os.sched_getaffinity(0))  # == nproc
    except (AttributeError, OSError):
        pass
    real_memory = max(256, int(_mem_total_mb() * 0.9))
    ctld_port, slurmd_port = _two_free_ports()

    # ---- fake GPUs: character devices (same major/minor as /dev/null) ----
    gpu_files = []
    for i in range(n_gpus):
        dev = devdir / f"nvidia{i}"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        gpu_files.append(dev)

    # ---- munge key + private munged ----
    key = mungedir / "munge.key"
    with open(key, "wb") as fh:  # == dd if=/dev/urandom bs=1 count=1024
        fh.write(os.urandom(1024))
    key.chmod(0o400)
    os.chown(key, 0, 0)

    logs = {
        "munged": mungedir / "munged.log",
        "slurmctld": logdir / "slurmctld.log",
        "slurmd": logdir / "slurmd.log",
        "slurmctld.stdout": logdir / "slurmctld.stdout",
        "slurmd.stdout": logdir / "slurmd.stdout",
    }

    gres_conf = etc / "gres.conf"
    (etc / "plugstack.conf").write_text("")  # keep /etc/slurm/plugstack.conf.d out
    node_gres = f" Gres=gpu:{n_gpus}" if n_gpus else ""
    conf.write_text(
        f"""\
# generated by tests/helpers/slurm_cluster.py
ClusterName={CLUSTER_NAME}
SlurmctldHost={nodename}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={statedir}
SlurmdSpoolDir={spool}
SlurmctldPidFile={logdir}/slurmctld.pid
SlurmdPidFile={logdir}/slurmd.pid
SlurmctldLogFile={logs["slurmctld"]}
SlurmdLogFile={logs["slurmd"]}
SlurmctldDebug={debug_level}
SlurmdDebug={debug_level}
PlugStackConfig={etc}/plugstack.conf
# no cgroups in containers/sandboxes
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
# no accounting: sacct does not work, use squeue for job status
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# keep finished jobs visible to squeue long enough for the snakemake plugin
MinJobAge=600
ReturnToService=2
# trust the config below rather than comparing with the (virtual) hardware
SlurmdParameters=config_overrides
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
MailProg=/bin/true
KillWait=5
Waittime=0
NodeName={nodename} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory}{node_gres} State=UNKNOWN
PartitionName={partition} Nodes={nodename} Default=YES MaxTime=INFINITE State=UP
"""
    )
    gres_lines = ["# generated by tests/helpers/slurm_cluster.py", "AutoDetect=off"]
    gres_lines += [f"NodeName={nodename} Name=gpu File={f}" for f in gpu_files]
    gres_conf.write_text("\n".join(gres_lines) + "\n")

    _write_client_wrappers(bindir, conf)
    env = {
        "SLURM_CONF": str(conf),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
    }
    daemon_env = {**os.environ, "SLURM_CONF": str(conf)}
    for k in list(daemon_env):
        if k.startswith(("SLURM_", "SBATCH_", "SRUN_")) and k != "SLURM_CONF":
            del daemon_env[k]
        elif k == "CUDA_VISIBLE_DEVICES":
            del daemon_env[k]

    cluster = SlurmCluster(
        workdir=workdir,
        conf=conf,
        partition=partition,
        nodename=nodename,
        n_gpus=n_gpus,
        cpus=cpus,
        real_memory_mb=real_memory,
        env=env,
        logs=logs,
    )

    procs: dict[str, subprocess.Popen] = {}
    out_files = []

    def spawn(name: str, argv: list[str], stdout: Path | None) -> None:
        fh = open(stdout, "wb") if stdout else subprocess.DEVNULL
        if stdout:
            out_files.append(fh)
        procs[name] = subprocess.Popen(
            argv,
            env=daemon_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(workdir),
            preexec_fn=_die_with_parent,
        )

    def fail(msg: str) -> SlurmClusterError:
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        extra = f" (exited early: {dead})" if dead else ""
        return SlurmClusterError(f"{msg}{extra}\n{_log_tails(logs)}")

    def _stop() -> None:
        # cancel leftover jobs so slurmstepd/job processes go away cleanly
        if procs.get("slurmctld") is not None and procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                cluster.run("scancel", "--full", "--quiet", "-u", "root", check=False, timeout=10)
                t_end = time.monotonic() + 10
                while time.monotonic() < t_end and _stepd_pids(conf):
                    time.sleep(0.2)
        _terminate(procs.get("slurmd"))
        _kill_stepds(conf)
        _terminate(procs.get("slurmctld"))
        _terminate(procs.get("munged"))
        for fh in out_files:
            with contextlib.suppress(Exception):
                fh.close()

    with contextlib.ExitStack() as stack:
        stack.callback(_stop)
        # -- munged (foreground so that we own its pid)
        spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--pid-file={mungedir / 'munged.pid'}",
                f"--log-file={logs['munged']}",
                f"--seed-file={mungedir / 'munged.seed'}",
                "--num-threads=2",
            ],
            None,
        )
        deadline = time.monotonic() + 15
        while not munge_socket.exists():
            if procs["munged"].poll() is not None or time.monotonic() > deadline:
                raise fail("munged did not come up")
            time.sleep(0.05)

        # -- slurmctld, slurmd in the foreground (-D); -c: ignore any old state
        spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(conf)], logs["slurmctld.stdout"])
        time.sleep(0.2)
        spawn(
            "slurmd",
            [_which("slurmd"), "-D", "-c", "-f", str(conf), "-N", nodename],
            logs["slurmd.stdout"],
        )

        deadline = time.monotonic() + start_timeout
        node_state = "<not queried>"
        while True:
            for name, p in procs.items():
                if p.poll() is not None:
                    raise fail(f"{name} exited with code {p.returncode} during start-up")
            node_state = _node_state(env, nodename)
            if node_state in ("idle", "mix", "alloc"):
                break
            if node_state in ("drain", "drng", "down"):
                # registered (no "*" suffix) but drained/down, e.g. by a stale
                # reason: bring it back
                cluster.run("scontrol", "update", f"NodeName={nodename}", "State=RESUME", check=False)
            if time.monotonic() > deadline:
                reason = cluster.run("scontrol", "show", "node", nodename, check=False).stdout
                raise fail(
                    f"SLURM node {nodename!r} not idle after {start_timeout:.0f}s "
                    f"(last sinfo state: {node_state})\n{reason}"
                )
            time.sleep(0.25)

        yield cluster
