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

# Daemons must not be auto-started by the package (no systemd in CI containers;
# the test suite starts its own slurmctld/slurmd/munged with private configs).
source "$(dirname "$0")/apt-install.sh"
apt_install install-slurm slurm-wlm munge

if ! have_all; then
    echo "install-slurm: installation finished but some binaries are still missing" >&2
    exit 1
fi
echo "install-slurm: installed slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null)"
