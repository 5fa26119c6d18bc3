#!/usr/bin/env bash
# Installs (or removes) camera-node as a systemd service on Raspberry Pi OS, from a packed release
# (`npm pack` -> camera-node-<version>.tgz). Safe to run again: an upgrade is the same command with a
# newer tarball; the settings file is written once and never overwritten.
#
#   sudo bash install.sh [camera-node-X.Y.Z.tgz]      install or upgrade, enable and (re)start
#   sudo bash install.sh --uninstall [--purge]         remove the program and the service
#                                                      (--purge: also settings, images, logs, user)
# For tests and packaging:
#   --root DIR     act on DIR as if it were / (no users, no chown, no systemctl); also ROOT=DIR
#                  or DESTDIR=DIR
#   --dry-run      print each step, change nothing
#   --no-start     install and enable, but do not (re)start the service
# Environment: NPM, NODE (the commands used; defaults npm, node), UNAME_M (the machine) and
# SYSTEMD_VERSION (systemd's major version), both for tests.
set -euo pipefail

MIN_NODE_MAJOR=20
# Node 20 reached end of life in April 2026; 22 is the LTS line that still has ARMv6 (Pi Zero W)
# builds, which stop at 23.
RECOMMENDED_NODE_MAJOR=22
APP=camera-node
APP_USER=camera-node

ROOT="${ROOT:-${DESTDIR:-/}}"
NPM="${NPM:-npm}"
NODE="${NODE:-node}"
DRY_RUN=0
UNINSTALL=0
PURGE=0
START=1
TARBALL=""
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { printf '%s\n' "camera-node install: $*"; }
die() { printf '%s\n' "camera-node install: error: $*" >&2; exit 1; }
# Every change goes through run: --dry-run prints it instead.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) TARBALL="$1"; shift ;;
  esac
done

ROOT="${ROOT%/}"
# A real install touches users, ownership and systemd; under --root only files are written.
REAL=0
[ -z "$ROOT" ] && REAL=1
PREFIX="$ROOT/opt/$APP"
ETC_DIR="$ROOT/etc/$APP"
ENV_FILE="$ETC_DIR/$APP.env"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/$APP.service"
DROPIN_DIR="$UNIT_DIR/$APP.service.d"
STATE_DIR="$ROOT/var/lib/$APP"
LOG_DIR="$ROOT/var/log/$APP"
PACKAGE_DIR="$PREFIX/lib/node_modules/$APP"
SYSTEMD_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

have_systemd() { [ "$REAL" -eq 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

systemctl_step() {
  if have_systemd; then
    run systemctl "$@"
  else
    say "skipped (no systemd here or --root): systemctl $*"
  fi
}

if [ "$REAL" -eq 1 ] && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root: sudo bash $0"
fi

node_help() {
  local machine
  machine="${UNAME_M:-$(uname -m)}"
  cat >&2 <<EOF
camera-node needs Node.js $MIN_NODE_MAJOR or newer (this machine: $machine).
EOF
  case "$machine" in
    armv6l)
      cat >&2 <<'EOF'
This is an ARMv6 board (Pi Zero W, Pi 1), for which nodejs.org's official builds stopped at
Node 11 and Debian's nodejs package is too old. Use the community "unofficial builds" of Node for
armv6l (the unofficial-builds project of nodejs.org publishes node-vXX.Y.Z-linux-armv6l.tar.xz).
Take Node 22, the newest v22 listed at https://unofficial-builds.nodejs.org/download/release/:
Node 20 is end-of-life since April 2026, and armv6l builds stop at Node 23 (there are none for 24).
  V=v22.12.0   # or a newer v22
  curl -fsSLO https://unofficial-builds.nodejs.org/download/release/$V/node-$V-linux-armv6l.tar.xz
  sudo tar -xJf node-$V-linux-armv6l.tar.xz -C /usr/local --strip-components=1
  node --version
(installs node and npm into /usr/local/bin, on systemd's PATH). Then run this script again.
EOF
      ;;
    armv7l|aarch64|arm64)
      cat >&2 <<'EOF'
On a Pi Zero 2 W, 3, 4 or 5 use an official build, e.g. from NodeSource's Debian repository
(https://github.com/nodesource/distributions: `curl -fsSL https://deb.nodesource.com/setup_22.x | sudo bash -`
then `sudo apt-get install -y nodejs`), or Debian's `nodejs` package where it is version 22 or newer.
EOF
      ;;
    *)
      echo "Install Node.js $MIN_NODE_MAJOR+ from your distribution or nodejs.org, then run this script again." >&2
      ;;
  esac
}

check_node() {
  local node_path major
  if ! node_path="$(command -v "$NODE")"; then
    node_help
    die "node not found"
  fi
  major="$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$major" -lt "$MIN_NODE_MAJOR" ]; then
    node_help
    die "node $("$NODE" --version 2>/dev/null || echo '?') at $node_path is too old"
  fi
  command -v "$NPM" >/dev/null 2>&1 || die "npm not found (it comes with Node.js)"
  say "node $("$NODE" --version) at $node_path"
  if [ "$major" -lt "$RECOMMENDED_NODE_MAJOR" ]; then
    say "warning: Node $major is end-of-life; Node $RECOMMENDED_NODE_MAJOR is recommended (on a Pi Zero W: the armv6l unofficial build)"
  fi
  NODE_DIR="$(dirname "$node_path")"
}

# systemd's major version: SYSTEMD_VERSION (tests), else `systemctl --version`; empty when unknown.
systemd_major() {
  if [ -n "${SYSTEMD_VERSION:-}" ]; then printf '%s\n' "$SYSTEMD_VERSION"; return; fi
  command -v systemctl >/dev/null 2>&1 || return 0
  systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 + 0 }'
}

# ProtectClock=yes adds a device allow-list (the RTC) to the unit; before systemd 252 (Bullseye has
# 247) that list closes every other device, the camera's /dev/video*, /dev/media* and /dev/dma_heap
# among them. On those versions a drop-in turns it off; on 252 and newer (Bookworm) it stays on.
protect_clock_dropin() {
  local major dropin="$DROPIN_DIR/protect-clock.conf"
  major="$(systemd_major)"
  if [ -n "$major" ] && [ "$major" -lt 252 ]; then
    say "systemd $major: ProtectClock would block the camera devices, adding a drop-in that turns it off"
    run install -d -m 0755 "$DROPIN_DIR"
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '+ write %s\n' "$dropin"
    else
      printf '[Service]\n# systemd < 252: ProtectClock=yes would also close the camera devices.\nProtectClock=no\n' >"$dropin"
    fi
  elif [ -f "$dropin" ]; then
    run rm -f "$dropin"
  fi
}

find_tarball() {
  if [ -n "$TARBALL" ]; then
    [ -f "$TARBALL" ] || die "no such file: $TARBALL"
    return
  fi
  local dir candidate
  # The newest release tarball in the current dir, or beside the unpacked package this script is in.
  for dir in "$PWD" "$SCRIPT_DIR/.." "$SCRIPT_DIR/../.."; do
    candidate="$(find "$dir" -maxdepth 1 -name "$APP-*.tgz" -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)"
    if [ -n "$candidate" ]; then TARBALL="$candidate"; return; fi
  done
  die "no $APP-*.tgz found: give its path (build one with 'npm pack' in the source tree)"
}

create_user() {
  if [ "$REAL" -eq 0 ]; then
    say "skipped (--root): system user $APP_USER in group video"
    return
  fi
  if id -u "$APP_USER" >/dev/null 2>&1; then
    say "user $APP_USER exists"
  else
    run useradd --system --user-group --home-dir /var/lib/$APP --no-create-home --shell /usr/sbin/nologin "$APP_USER"
  fi
  # The camera devices belong to the video group (the unit also adds it as a supplementary group).
  if getent group video >/dev/null 2>&1; then run usermod -a -G video "$APP_USER"; fi
}

owned_dir() { # dir mode: created owned by the service user
  run install -d -m "$2" "$1"
  if [ "$REAL" -eq 1 ]; then run chown "$APP_USER:$APP_USER" "$1"; fi
}

install_files() {
  say "installing $TARBALL into $PREFIX (production dependencies only)"
  run install -d -m 0755 "$PREFIX"
  # --global with a prefix: the package and its production dependencies under $PREFIX/lib, the
  # `camera-node` command in $PREFIX/bin. Dev dependencies are never installed this way.
  run "$NPM" install --global --prefix "$PREFIX" --omit=dev --no-audit --no-fund --loglevel=error "$TARBALL"

  local unit_src="$PACKAGE_DIR/deploy/$APP.service" env_src="$PACKAGE_DIR/deploy/$APP.env"
  [ -f "$unit_src" ] || unit_src="$SCRIPT_DIR/$APP.service"
  [ -f "$env_src" ] || env_src="$SCRIPT_DIR/$APP.env"

  run install -d -m 0755 "$UNIT_DIR"
  run install -m 0644 "$unit_src" "$UNIT"

  # node outside systemd's PATH (nvm, a tarball in /opt): tell the unit where it is.
  if [ -n "${NODE_DIR:-}" ] && [[ ":$SYSTEMD_PATH:" != *":$NODE_DIR:"* ]]; then
    say "node is in $NODE_DIR, not on systemd's PATH: adding a drop-in"
    run install -d -m 0755 "$DROPIN_DIR"
    local dropin="[Service]\nEnvironment=PATH=$NODE_DIR:$SYSTEMD_PATH\n"
    # ProtectHome=yes would hide a node installed under a home directory.
    case "$NODE_DIR" in /home/*|/root/*) dropin="${dropin}ProtectHome=read-only\n" ;; esac
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '+ write %s/node-path.conf\n' "$DROPIN_DIR"
    else
      printf '%b' "$dropin" >"$DROPIN_DIR/node-path.conf"
    fi
  elif [ -f "$DROPIN_DIR/node-path.conf" ]; then
    run rm -f "$DROPIN_DIR/node-path.conf"
  fi

  protect_clock_dropin

  run install -d -m 0755 "$ETC_DIR"
  if [ -f "$ENV_FILE" ]; then
    say "keeping the settings in $ENV_FILE"
  else
    run install -m 0640 "$env_src" "$ENV_FILE"
    say "wrote $ENV_FILE: edit it (MQTT_URL, NODE_ID...), then: sudo systemctl restart $APP"
  fi
  # It may hold the broker password: root and the service's group only.
  if [ "$REAL" -eq 1 ]; then run chgrp "$APP_USER" "$ENV_FILE"; fi

  owned_dir "$STATE_DIR" 0750
  owned_dir "$LOG_DIR" 0750
}

enable_service() {
  systemctl_step daemon-reload
  systemctl_step enable "$APP.service"
  if [ "$START" -eq 1 ]; then
    # restart, not start: an upgrade must load the new version.
    systemctl_step restart "$APP.service"
    if have_systemd && [ "$DRY_RUN" -eq 0 ]; then
      sleep 2
      systemctl --no-pager --lines=5 status "$APP.service" || die "the service did not start: journalctl -u $APP -e"
    fi
  fi
}

uninstall() {
  if have_systemd && systemctl list-unit-files "$APP.service" >/dev/null 2>&1; then
    run systemctl disable --now "$APP.service" || true
  else
    say "skipped (no systemd here or --root): systemctl disable --now $APP.service"
  fi
  run rm -f "$UNIT"
  run rm -rf "$DROPIN_DIR" "$PREFIX"
  systemctl_step daemon-reload
  if [ "$PURGE" -eq 1 ]; then
    run rm -rf "$ETC_DIR" "$STATE_DIR" "$LOG_DIR"
    if [ "$REAL" -eq 1 ] && id -u "$APP_USER" >/dev/null 2>&1; then run userdel "$APP_USER"; fi
    say "removed the program, the service, settings, images, logs and the $APP_USER user"
  else
    say "removed the program and the service; kept $ETC_DIR, $STATE_DIR (images) and $LOG_DIR (--purge removes them)"
  fi
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi

check_node
find_tarball
create_user
install_files
enable_service
say "done. Status: systemctl status $APP; logs: journalctl -u $APP -f; API: curl http://localhost:5003/status"
