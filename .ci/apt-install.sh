# Sourced by .ci/install-*.sh: apt_install NAME PACKAGE... installs Debian packages as root or via passwordless
# sudo (no recommends, quiet, non-interactive); fails with one message naming NAME when neither is available.
apt_install() {
    local name=$1
    shift
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "$name: need root (or sudo) to apt-get install $*" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
