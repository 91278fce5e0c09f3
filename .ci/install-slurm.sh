#!/usr/bin/env bash
# Install a local single-node SLURM (slurm-wlm) + munge for the nnrds test suite.
# Idempotent: does nothing if slurmctld, slurmd, sbatch, squeue and munged already exist.
# Needs root (or passwordless sudo) and Debian/Ubuntu apt.
set -euo pipefail

have_all() {
    local b
    for b in sbatch squeue sinfo slurmctld slurmd munged; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || return 1
    done
    return 0
}

if have_all; then
    echo "install-slurm: slurm-wlm and munge already installed, nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-slurm: need root (or sudo) to apt-get install slurm-wlm munge" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Daemons must not be auto-started by the package (no systemd in CI containers;
# the test suite starts its own slurmctld/slurmd/munged with private configs).
$SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null

if ! have_all; then
    echo "install-slurm: installation finished but some binaries are still missing" >&2
    exit 1
fi
echo "install-slurm: installed slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null)"
