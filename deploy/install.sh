#!/usr/bin/env bash
# Install one hallq role on a Raspberry Pi OS Bookworm (or Debian 12) machine, from this source tree.
#
#   sudo deploy/install.sh ROLE [--credential FILE] [--ca FILE] [--broker-name NAME]... [--web-name NAME]...
#                               [--local-audio] [--simulated-hardware] [--dry-run] [--root DIR]
#   sudo deploy/install.sh uninstall ROLE [--purge] [--dry-run] [--root DIR]
#
#   ROLE           controller | dispenser | counter | display | manager (the office's web service: on the
#                  controller's Pi, after the controller; its credential and certificate come from there)
#   uninstall      stop and disable the role's services and remove what the installer put in place; keep its
#                  config, credentials and (controller) the ledger, and say what was kept
#   --purge        uninstall only: remove the kept config, credentials and ledger too
#   --credential   this device's MQTT password file (from provisioning on the controller's Pi), installed as
#                  /etc/hallq/credentials/ROLE.mqtt-password for the unit's LoadCredential=
#   --ca           the hall's CA certificate (ca.crt from the controller's Pi), installed as /etc/hallq/ca.crt
#   --broker-name  controller only: a name or address devices dial, for the broker's TLS certificate (repeatable)
#   --web-name     manager only: a name or address the office's browsers dial, for the manager's HTTPS
#                  certificate, signed by the hall's CA (repeatable; default: this host's names and loopback)
#   --local-audio  display only: this Pi plays the announcements ([announce] output = "local"): alsa-utils and
#                  the unit's drop-in local-audio.conf (the sound devices). Also done, without the option, when
#                  /etc/hallq/display.toml says output = "local"; otherwise a drop-in left from before is removed
#   --simulated-hardware  dispenser, counter: a dry run without the Pi's buttons and printer (docs/deploy.md, "A dry
#                  run"): gpiozero's mock pins, the dispenser in --simulate (preview printer, buttons pressed by
#                  writing a key to /run/hallq-dispenser.keys). A later run without it goes back to the hardware
#   --dry-run      print what would change, change nothing
#   --root DIR     install into the file tree at DIR instead of / (an image being prepared, or a test): no
#                  Debian packages, no virtual environment (a venv is bound to its path and CPU), no service
#                  is started; users, files, units and their enablement are written into DIR
#
# What it does: Debian packages the role needs; the users and groups (systemd-sysusers); a virtual environment
# in /opt/hallq/venv with hallq; the config skeleton in /etc/hallq (an existing file is never overwritten);
# the role's systemd units (for a display that plays the sound itself, with local-audio.conf), the udev rule,
# the broker's config; it enables the role's services and (re)starts those whose files changed.
# Idempotent: a second run changes nothing and says so.
set -euo pipefail

SRC=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
PREFIX=/opt/hallq
ROOT=
DRY_RUN=0
ROLE=
ACTION=install
PURGE=0
CREDENTIAL=
CA_FILE=
BROKER_NAMES=()
WEB_NAMES=()
LOCAL_AUDIO=0
SIMULATED=0
CHANGES=0
RESTART=0

say() { printf '[hallq] %s\n' "$*"; }
die() { printf '[hallq] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '3,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        controller|dispenser|counter|display|manager) [ -z "$ROLE" ] || usage; ROLE=$1 ;;
        uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --root) [ $# -ge 2 ] || usage; ROOT=$(readlink -m "$2"); shift ;;
        --credential) [ $# -ge 2 ] || usage; CREDENTIAL=$2; shift ;;
        --ca) [ $# -ge 2 ] || usage; CA_FILE=$2; shift ;;
        --broker-name) [ $# -ge 2 ] || usage; BROKER_NAMES+=("$2"); shift ;;
        --web-name) [ $# -ge 2 ] || usage; WEB_NAMES+=("$2"); shift ;;
        --local-audio) LOCAL_AUDIO=1 ;;
        --simulated-hardware) SIMULATED=1 ;;
        -h|--help) usage ;;
        *) printf '[hallq] unknown argument: %s\n' "$1" >&2; usage ;;
    esac
    shift
done
[ -n "$ROLE" ] || usage
[ -z "$CREDENTIAL" ] || [ -r "$CREDENTIAL" ] || die "cannot read credential file $CREDENTIAL"
[ -z "$CA_FILE" ] || [ -r "$CA_FILE" ] || die "cannot read CA file $CA_FILE"
[ ${#BROKER_NAMES[@]} -eq 0 ] || [ "$ROLE" = controller ] || die "--broker-name is for the controller's Pi"
[ ${#WEB_NAMES[@]} -eq 0 ] || [ "$ROLE" = manager ] || die "--web-name is for the manager"
[ "$LOCAL_AUDIO" -eq 0 ] || [ "$ROLE" = display ] || die "--local-audio is for a display's Pi"
[ "$SIMULATED" -eq 0 ] || [ "$ROLE" = dispenser ] || [ "$ROLE" = counter ] \
    || die "--simulated-hardware is for a dispenser or a counter"
[ "$PURGE" -eq 0 ] || [ "$ACTION" = uninstall ] || die "--purge is for uninstall"
if [ "$ACTION" = uninstall ] && { [ -n "$CREDENTIAL$CA_FILE" ] || [ ${#BROKER_NAMES[@]} -gt 0 ] || [ ${#WEB_NAMES[@]} -gt 0 ] \
    || [ "$LOCAL_AUDIO" -eq 1 ] || [ "$SIMULATED" -eq 1 ]; }; then
    die "uninstall takes only --purge, --dry-run and --root"
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo), or try --dry-run"
fi

# --- helpers: each one changes something only when it differs, and counts the change ---------------------------

change() {  # change DESCRIPTION COMMAND...: run (or, dry, describe) one change
    local what=$1
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" -eq 1 ]; then
        say "would $what"
    else
        say "$what"
        "$@"
    fi
}

# A group's numeric id inside ROOT (chown by name would look the group up in this machine's /etc/group).
gid_of() {
    local line
    line=$(grep -E "^$1:" "$ROOT/etc/group" 2>/dev/null || true)
    [ -n "$line" ] || { echo ""; return 0; }
    echo "$line" | cut -d: -f3
}

ensure_dir() {  # ensure_dir PATH MODE [GROUP]
    local path=$ROOT$1 mode=$2 group=${3:-root} gid
    gid=$(gid_of "$group")
    [ -n "$gid" ] || gid=0
    if [ ! -d "$path" ]; then
        change "create $1" install -d -m "$mode" -o 0 -g "$gid" "$path"
    elif [ "$(stat -c '%a %g' "$path")" != "${mode#0} $gid" ]; then
        # shellcheck disable=SC2016  # the inner sh expands its own positional arguments
        change "set mode $mode group $group on $1" sh -c 'chmod "$1" "$3" && chgrp "$2" "$3"' _ "$mode" "$gid" "$path"
    fi
}

install_file() {  # install_file SOURCE TARGET MODE [GROUP]: copy unless TARGET has the same content and mode
    local source=$1 target=$ROOT$2 mode=$3 group=${4:-root} gid
    gid=$(gid_of "$group")
    [ -n "$gid" ] || gid=0
    if [ ! -e "$target" ] || ! cmp -s "$source" "$target"; then
        change "install $2" install -D -m "$mode" -o 0 -g "$gid" "$source" "$target"
        return 0
    fi
    if [ "$(stat -c '%a %g' "$target")" != "${mode#0} $gid" ]; then
        # shellcheck disable=SC2016  # the inner sh expands its own positional arguments
        change "set mode $mode group $group on $2" sh -c 'chmod "$1" "$3" && chgrp "$2" "$3"' _ "$mode" "$gid" "$target"
    fi
}

remove_file() {  # remove_file TARGET: delete it if it is there (and its directory, if that is left empty)
    [ -e "$ROOT$1" ] || return 0
    # shellcheck disable=SC2016  # the inner sh expands its own positional arguments
    change "remove $1" sh -c 'rm -f "$1" && rmdir --ignore-fail-on-non-empty "$(dirname "$1")"' _ "$ROOT$1"
}

install_new() {  # install_new SOURCE TARGET MODE [GROUP]: a config skeleton, never overwriting the technician's file
    if [ -e "$ROOT$2" ]; then
        return 0
    fi
    if [ ! -e "$1" ]; then
        say "warning: no ${1#"$SRC"/} in this source tree; write $2 by hand"
        return 0
    fi
    install_file "$@"
}

# --- what each role needs ---------------------------------------------------------------------------------------

# The display's [announce] output, read as the display reads it (python3's tomllib; Debian 12 has Python 3.11).
# No config yet, or one that is not TOML (the display refuses it too, exit 78): "page", the default.
announce_output() {
    local config=$ROOT/etc/hallq/display.toml
    [ -e "$config" ] || { echo page; return 0; }
    python3 - "$config" 2>/dev/null <<'PY' || { say "warning: cannot read $config; local audio only with --local-audio" >&2; echo page; }
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    print(tomllib.load(file).get("announce", {}).get("output", "page"))
PY
}

if [ "$ACTION" = install ] && [ "$ROLE" = display ] && [ "$LOCAL_AUDIO" -eq 0 ] && [ "$(announce_output)" = local ]; then
    LOCAL_AUDIO=1
fi

debs=(python3-venv python3-pip)
units=("hallq-$ROLE.service")
timers=()  # enabled and started on their own: their services run only when the timer fires
case "$ROLE" in
    controller) debs+=(mosquitto openssl); timers+=(hallq-backup.timer) ;;
    dispenser) debs+=(fonts-dejavu-core) ;;
    counter) ;;
    display) debs+=(espeak-ng fonts-dejavu-core cage curl); units+=(hallq-kiosk.service) ;;
    manager) debs+=(openssl) ;;
esac
[ "$LOCAL_AUDIO" -eq 0 ] || debs+=(alsa-utils)  # aplay, the display's [announce] player

install_debs() {
    if [ -n "$ROOT" ]; then
        say "skip Debian packages in --root mode: ${debs[*]}"
        return 0
    fi
    if [ "$ROLE" = display ]; then
        # Raspberry Pi OS packages the browser as chromium-browser, Debian as chromium.
        if apt-cache show chromium-browser >/dev/null 2>&1; then debs+=(chromium-browser); else debs+=(chromium); fi
    fi
    local missing=() pkg
    for pkg in "${debs[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    change "install Debian packages: ${missing[*]}" sh -c \
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"' \
        _ "${missing[@]}"
}

run_sysusers() {  # quiet unless it fails: the change line already names what is created
    local out
    out=$(systemd-sysusers "$@" hallq.conf 2>&1) || { echo "$out" >&2; return 1; }
}

install_users() {
    install_file "$SRC/deploy/sysusers.d/hallq.conf" /etc/sysusers.d/hallq.conf 0644
    local args=()
    [ -z "$ROOT" ] || args+=("--root=$ROOT")
    if [ -e "$ROOT/etc/sysusers.d/hallq.conf" ]; then
        local plan
        plan=$(systemd-sysusers "${args[@]}" --dry-run hallq.conf 2>&1 \
            | sed -nE "s/^Creating (user|group) '([^']+)'.*/\1 \2/p" | tr '\n' ' ')
        [ -z "$plan" ] || change "create ${plan% }" run_sysusers "${args[@]}"
    else
        say "would create the users and groups of deploy/sysusers.d/hallq.conf"
    fi
}

source_stamp() {  # a checksum of everything pip would install
    (cd "$SRC" && find pyproject.toml hallq hall_controller dispenser counter display manager -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

install_venv() {
    if [ -n "$ROOT" ]; then
        say "skip the virtual environment in --root mode: run deploy/install.sh $ROLE on the target to create it"
        return 0
    fi
    local venv=$PREFIX/venv extra=$ROLE stamp gpio=""
    # gpiozero's backend on a Pi (the only one that works on a Pi 5); PyPI's 0.0.0.2 is an empty stub.
    case "$ROLE:$(uname -m)" in dispenser:aarch64|dispenser:armv7l|counter:aarch64|counter:armv7l) gpio="lgpio>=0.2" ;; esac
    stamp="$(source_stamp) $ROLE $gpio"
    if [ ! -x "$venv/bin/python" ]; then
        change "create the virtual environment $venv" python3 -m venv "$venv"
    fi
    if [ "$(cat "$venv/.hallq-source" 2>/dev/null)" != "$stamp" ]; then
        # shellcheck disable=SC2016  # the inner sh expands its own positional arguments
        change "install hallq${extra:+[$extra]} into $venv" sh -c \
            '"$1/bin/pip" install -q --upgrade pip && "$1/bin/pip" install -q --upgrade "$2" ${4:+"$4"} && echo "$3" > "$1/.hallq-source"' \
            _ "$venv" "$SRC${extra:+[$extra]}" "$stamp" "$gpio"
        RESTART=1
    fi
}

# The controller's hall.toml on a first install: the example hall with the controller's broker login filled in
# (the account and credential that provisioning creates), so the first install ends with a controller that logs
# in. Printed on stdout; the caller installs it.
hall_config_with_login() {
    sed -e 's|^# username = "controller" |username = "controller"   |' \
        -e 's|^# password_file = "/run/credentials/hallq-controller.service/mqtt-password"|password_file = "/run/credentials/hallq-controller.service/mqtt-password"|' \
        "$SRC/config/hall.example.toml"
}

# The [mqtt] username of an existing hall.toml (python3's tomllib, as the controller reads it), empty if none.
hall_username() {
    python3 - "$ROOT/etc/hallq/hall.toml" 2>/dev/null <<'PY' || true
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    print(tomllib.load(file).get("mqtt", {}).get("username", ""))
PY
}

install_hall_config() {
    local target=/etc/hallq/hall.toml generated
    if [ -e "$ROOT$target" ]; then
        if [ -z "$(hall_username)" ]; then
            say "warning: the controller cannot log in to the broker: $target has no username in [mqtt]. Add these" \
                "two lines to its [mqtt] table, then run this installer again:" \
                'username = "controller"' \
                'password_file = "/run/credentials/hallq-controller.service/mqtt-password"'
        fi
        return 0
    fi
    generated=$(mktemp)
    hall_config_with_login > "$generated"
    if ! grep -q '^username = "controller"' "$generated" || ! grep -q '^password_file = ' "$generated"; then
        rm -f "$generated"
        die "config/hall.example.toml no longer has the [mqtt] username and password_file lines to fill in"
    fi
    install_file "$generated" "$target" 0640 hallq
    rm -f "$generated"
}

install_config() {
    ensure_dir /etc/hallq 0755
    ensure_dir /etc/hallq/credentials 0700
    case "$ROLE" in
        controller)
            install_hall_config
            install_new "$SRC/deploy/displays.example.toml" /etc/hallq/displays.toml 0644
            ensure_dir /etc/hallq/broker 0755
            install_file "$SRC/config/mosquitto/hallq.conf" /etc/hallq/broker/hallq.conf 0644
            # The key of the citizens' profiles (docs/privacy.md), the unit's credential profile-key: made once and
            # never replaced (profiles sealed with a key cannot be read with another).
            if [ ! -e "$ROOT/etc/hallq/credentials/profile.key" ]; then
                # shellcheck disable=SC2016  # the inner sh expands its own positional arguments
                change "create the profiles' key /etc/hallq/credentials/profile.key" sh -c \
                    'umask 077 && { head -c 32 /dev/urandom | od -An -v -tx1 | tr -d " \n"; echo; } > "$1"' \
                    _ "$ROOT/etc/hallq/credentials/profile.key"
            fi
            ;;
        display)
            install_new "$SRC/config/display.example.toml" /etc/hallq/display.toml 0640 hallq
            install_new "$SRC/deploy/kiosk.env" /etc/hallq/kiosk.env 0644
            ;;
        manager)
            install_new "$SRC/config/manager.example.toml" /etc/hallq/manager.toml 0640 hallq
            # On the controller's Pi provisioning has made the manager's password: use it unless one is given.
            local provisioned=/etc/hallq/broker/credentials/manager.mqtt-password
            if [ -z "$CREDENTIAL" ] && [ -e "$ROOT$provisioned" ]; then
                install_file "$ROOT$provisioned" /etc/hallq/credentials/manager.mqtt-password 0600
            fi
            install_file "$SRC/docs/manager.md" "$PREFIX/docs/manager.md" 0644
            ;;
        *)
            install_new "$SRC/config/$ROLE.example.toml" "/etc/hallq/$ROLE.toml" 0640 hallq
            ;;
    esac
    [ -z "$CREDENTIAL" ] || install_file "$CREDENTIAL" "/etc/hallq/credentials/$ROLE.mqtt-password" 0600
    [ -z "$CA_FILE" ] || install_file "$CA_FILE" /etc/hallq/ca.crt 0644
    install_file "$SRC/docs/deploy.md" "$PREFIX/docs/deploy.md" 0644
}

install_units() {
    local unit before=$CHANGES
    for unit in "${units[@]}"; do
        install_file "$SRC/systemd/$unit" "/etc/systemd/system/$unit" 0644
    done
    case "$ROLE" in
        controller)
            install_file "$SRC/systemd/mosquitto.service.d/hallq.conf" \
                /etc/systemd/system/mosquitto.service.d/hallq.conf 0644
            # The nightly ledger backup: the timer, the service it starts, and their documentation.
            install_file "$SRC/systemd/hallq-backup.service" /etc/systemd/system/hallq-backup.service 0644
            install_file "$SRC/systemd/hallq-backup.timer" /etc/systemd/system/hallq-backup.timer 0644
            install_file "$SRC/docs/operations.md" "$PREFIX/docs/operations.md" 0644
            ;;
        dispenser|counter)
            install_file "$SRC/deploy/60-hallq.rules" /etc/udev/rules.d/60-hallq.rules 0644
            # A dry run without the hardware (--simulated-hardware): the mock pins and, for the dispenser, the
            # simulated kiosk fed from a FIFO. Otherwise none of it.
            local simulated=/etc/systemd/system/hallq-$ROLE.service.d/simulated-hardware.conf
            local keys=/etc/systemd/system/hallq-dispenser-keys.socket
            if [ "$SIMULATED" -eq 1 ]; then
                install_file "$SRC/systemd/hallq-$ROLE.service.d/simulated-hardware.conf" "$simulated" 0644
                [ "$ROLE" != dispenser ] || install_file "$SRC/systemd/hallq-dispenser-keys.socket" "$keys" 0644
            else
                remove_file "$simulated"
                if [ "$ROLE" = dispenser ] && [ -e "$ROOT$keys" ]; then
                    stop_units hallq-dispenser-keys.socket
                    remove_file "$keys"
                fi
            fi
            ;;
        display)
            install_file "$SRC/deploy/hallq-kiosk" "$PREFIX/bin/hallq-kiosk" 0755
            # The sound devices only for a display that plays the announcements itself; otherwise none.
            local audio=/etc/systemd/system/hallq-display.service.d/local-audio.conf
            if [ "$LOCAL_AUDIO" -eq 1 ]; then
                install_file "$SRC/systemd/hallq-display.service.d/local-audio.conf" "$audio" 0644
            else
                remove_file "$audio"
            fi
            ;;
    esac
    [ "$CHANGES" -eq "$before" ] || RESTART=1
    if [ -z "$ROOT" ] && [ "$CHANGES" -ne "$before" ]; then
        change "reload systemd" systemctl daemon-reload
        reload_udev trigger
    fi
}

# udev applies a changed rule after a reload (and, for devices already there, a trigger). A machine without udevd
# (a container) has no devices for the rule; it applies from the next boot where udevd runs.
reload_udev() {
    if [ ! -S /run/udev/control ]; then
        say "udev is not running here (a container?): the udev rule applies where it runs"
        return 0
    fi
    if [ "${1:-}" = trigger ]; then
        change "reload udev" sh -c 'udevadm control --reload \
            && udevadm trigger --subsystem-match=usb --subsystem-match=usbmisc --subsystem-match=gpio'
    else
        change "reload udev" udevadm control --reload
    fi
}

enable_units() {
    local args=() unit enabling=("${units[@]}" "${timers[@]}")
    [ -z "$ROOT" ] || args+=("--root=$ROOT")
    if [ "$ROLE" = controller ]; then
        if [ -e "$ROOT/lib/systemd/system/mosquitto.service" ] || [ -e "$ROOT/usr/lib/systemd/system/mosquitto.service" ]; then
            enabling+=(mosquitto.service)
        else
            say "mosquitto is not installed${ROOT:+ in $ROOT}: its service is enabled once the package is there"
        fi
    fi
    for unit in "${enabling[@]}"; do
        if [ "$(systemctl "${args[@]}" is-enabled "$unit" 2>/dev/null || true)" != enabled ]; then
            change "enable $unit" systemctl "${args[@]}" --quiet enable "$unit"
        fi
    done
}

provision_broker() {  # controller: the broker's accounts, ACL and TLS certificate (both commands are idempotent)
    [ "$ROLE" = controller ] || return 0
    if [ -n "$ROOT" ] || [ "$DRY_RUN" -eq 1 ]; then
        say "next, on the target: provision the broker from /etc/hallq/hall.toml (python -m hall_controller provision, certs)"
        return 0
    fi
    local py=$PREFIX/venv/bin/python names=()
    local name
    for name in "${BROKER_NAMES[@]}"; do names+=(--name "$name"); done
    say "broker accounts and ACL from /etc/hallq/hall.toml"
    "$py" -m hall_controller provision --config /etc/hallq/hall.toml --out /etc/hallq/broker \
        --local-credential /etc/hallq/credentials/controller.mqtt-password
    say "the hall's CA and the broker's certificate"
    "$py" -m hall_controller certs --out /etc/hallq/broker/tls "${names[@]}"
    install_file /etc/hallq/broker/tls/ca.crt /etc/hallq/ca.crt 0644
}

manager_certs() {  # manager: its HTTPS certificate, signed by the hall's CA (hallq-controller certs, idempotent)
    [ "$ROLE" = manager ] || return 0
    local tls=/etc/hallq/manager/tls ca=/etc/hallq/broker/tls
    if [ -n "$ROOT" ] || [ "$DRY_RUN" -eq 1 ]; then
        say "next, on the target: the manager's HTTPS certificate from the hall's CA in $ca (hall_controller certs)"
        return 0
    fi
    [ -e "$ca/ca.key" ] || die "no hall CA in $ca: install the controller on this machine first (deploy/install.sh controller)"
    ensure_dir /etc/hallq/manager 0755
    ensure_dir "$tls" 0755
    # The CA stays where the controller keeps it; certs finds it through these links and issues server.crt here.
    local file
    for file in ca.crt ca.key; do
        [ "$(readlink "$tls/$file" 2>/dev/null)" = "$ca/$file" ] || change "link $tls/$file" ln -sfn "$ca/$file" "$tls/$file"
    done
    local names=() name before
    for name in "${WEB_NAMES[@]}"; do names+=(--name "$name"); done
    before=$(sha256sum "$tls/server.crt" 2>/dev/null || true)
    say "the manager's HTTPS certificate"
    "$PREFIX/venv/bin/python" -m hall_controller certs --out "$tls" --group hallq "${names[@]}"
    if [ "$(sha256sum "$tls/server.crt")" != "$before" ]; then
        CHANGES=$((CHANGES + 1))
        RESTART=1
    fi
}

start_units() {
    if [ -n "$ROOT" ] || [ "$DRY_RUN" -eq 1 ]; then
        return 0
    fi
    local unit
    local credential=/etc/hallq/credentials/$ROLE.mqtt-password
    if [ "$ROLE" = controller ]; then
        # The controller reads hall.toml only when it starts: a changed hall restarts it (the broker too, for the
        # accounts just provisioned from it).
        local applied=$PREFIX/hall.toml.applied config_sum
        config_sum=$(sha256sum /etc/hallq/hall.toml | cut -d' ' -f1)
        if [ "$(cat "$applied" 2>/dev/null)" != "$config_sum" ]; then
            [ ! -e "$applied" ] || say "/etc/hallq/hall.toml changed since the controller started with it"
            RESTART=1
            echo "$config_sum" > "$applied"
        fi
        if [ "$RESTART" -eq 1 ] || ! systemctl is-active --quiet mosquitto.service; then
            change "restart mosquitto.service" systemctl restart mosquitto.service
        else
            systemctl reload mosquitto.service  # provisioning may have changed accounts; a reload is harmless
        fi
    fi
    for unit in "${timers[@]}"; do
        if [ "$RESTART" -eq 1 ] || ! systemctl is-active --quiet "$unit"; then
            change "restart $unit" systemctl restart "$unit"
        fi
    done
    if [ ! -e "$credential" ]; then
        say "not starting ${units[*]}: no $credential yet (run again with --credential FILE)"
        return 0
    fi
    for unit in "${units[@]}"; do
        if [ "$RESTART" -eq 1 ] || ! systemctl is-active --quiet "$unit"; then
            change "restart $unit" systemctl restart --no-block "$unit"
        fi
    done
}

# --- uninstall: the reverse, keeping what a person wrote and what the hall needs to start again ------------------

installed_here() {  # installed_here ROLE...: true if one of these roles, other than this one, is installed here
    local role
    for role in "$@"; do
        if [ "$role" != "$ROLE" ] && [ -e "$ROOT/etc/systemd/system/hallq-$role.service" ]; then
            return 0
        fi
    done
    return 1
}

remove_path() {  # remove_path TARGET: delete a file, or a directory with everything in it, if it is there
    [ -e "$ROOT$1" ] || return 0
    change "remove $1" rm -rf -- "$ROOT$1"
}

stop_units() {  # stop_units UNIT...: stop (not in --root mode) and disable each
    local args=() unit state
    [ -z "$ROOT" ] || args+=("--root=$ROOT")
    for unit in "$@"; do
        # Stopped means inactive: a unit still starting (waiting for its broker) or waiting out RestartSec after a
        # crash is "activating", which is-active does not count as active, and would go on (or start again)
        # without its unit file. A failed unit stays listed (systemctl --failed) until its failure is forgotten.
        state=inactive
        [ -n "$ROOT" ] || state=$(systemctl show -p ActiveState --value "$unit" 2>/dev/null || true)
        case "$state" in
            inactive|"") ;;
            failed) change "forget the failed state of $unit" systemctl reset-failed "$unit" ;;
            *)
                change "stop $unit" systemctl stop "$unit"
                # A process that ends badly on SIGTERM (or is killed after TimeoutStopSec) leaves it failed.
                if [ "$DRY_RUN" -eq 0 ] && [ "$(systemctl show -p ActiveState --value "$unit" 2>/dev/null)" = failed ]; then
                    systemctl reset-failed "$unit"
                fi
                ;;
        esac
        if [ "$(systemctl "${args[@]}" is-enabled "$unit" 2>/dev/null || true)" = enabled ]; then
            change "disable $unit" systemctl "${args[@]}" --quiet disable "$unit"
        fi
    done
}

uninstall_role() {
    local stopping=("${units[@]}" "${timers[@]}") unit others=0 kept=() path
    ! installed_here controller dispenser counter display manager || others=1
    # The broker served the hall: Debian's package stays, stopped and disabled, without hallq's drop-in.
    [ "$ROLE" != controller ] || stopping+=(mosquitto.service)
    [ "$ROLE" != dispenser ] || [ ! -e "$ROOT/etc/systemd/system/hallq-dispenser-keys.socket" ] \
        || stopping+=(hallq-dispenser-keys.socket)
    stop_units "${stopping[@]}"
    for unit in "${units[@]}"; do
        remove_path "/etc/systemd/system/$unit"
    done
    for unit in "${timers[@]}"; do  # each timer and the service it starts
        remove_path "/etc/systemd/system/$unit"
        remove_path "/etc/systemd/system/${unit%.timer}.service"
    done
    case "$ROLE" in
        controller)
            remove_file /etc/systemd/system/mosquitto.service.d/hallq.conf
            remove_path /etc/hallq/broker/hallq.conf
            remove_path "$PREFIX/docs/operations.md"
            kept+=(/etc/hallq/hall.toml /etc/hallq/displays.toml /etc/hallq/broker /var/lib/hallq
                   /etc/hallq/credentials/profile.key)
            ;;
        dispenser|counter)
            installed_here dispenser counter || remove_path /etc/udev/rules.d/60-hallq.rules
            remove_file "/etc/systemd/system/hallq-$ROLE.service.d/simulated-hardware.conf"
            [ "$ROLE" != dispenser ] || remove_path /etc/systemd/system/hallq-dispenser-keys.socket
            [ "$ROLE" != dispenser ] || remove_path /var/cache/hallq-dispenser
            kept+=("/etc/hallq/$ROLE.toml")
            ;;
        manager)
            remove_path "$PREFIX/docs/manager.md"
            kept+=(/etc/hallq/manager.toml /etc/hallq/manager /var/lib/hallq/manager)
            ;;
        display)
            remove_file /etc/systemd/system/hallq-display.service.d/local-audio.conf
            remove_path "$PREFIX/bin/hallq-kiosk"
            remove_path /var/cache/hallq-display
            remove_path /var/cache/hallq-kiosk
            kept+=(/etc/hallq/display.toml /etc/hallq/kiosk.env)
            ;;
    esac
    kept+=("/etc/hallq/credentials/$ROLE.mqtt-password")
    for unit in "${units[@]}"; do  # drop-ins a technician added (systemctl edit); the installer's own go above
        if [ -n "$(find "$ROOT/etc/systemd/system/$unit.d" -mindepth 1 ! -name local-audio.conf \
            ! -name simulated-hardware.conf 2>/dev/null)" ]; then
            kept+=("/etc/systemd/system/$unit.d")
        fi
    done
    if [ "$others" -eq 0 ]; then  # the last hallq role here: what the roles share goes too
        remove_path "$PREFIX"
        remove_path /etc/sysusers.d/hallq.conf
        kept+=(/etc/hallq/ca.crt)
    fi
    if [ -z "$ROOT" ] && [ "$CHANGES" -gt 0 ]; then
        change "reload systemd" systemctl daemon-reload
        reload_udev
    fi
    local present=()
    for path in "${kept[@]}"; do
        [ ! -e "$ROOT$path" ] || present+=("$path")
    done
    if [ "$PURGE" -eq 1 ]; then
        for path in "${present[@]}"; do
            remove_path "$path"
        done
        [ "$others" -eq 1 ] || remove_path /etc/hallq
    elif [ ${#present[@]} -gt 0 ]; then
        say "kept for a reinstall (--purge removes them): ${present[*]}"
    fi
    say "kept: the users and groups hallq and hallq-kiosk (files may still belong to them), the Debian packages"
}

mode=""
[ "$DRY_RUN" -eq 0 ] || mode=" (dry run: nothing is changed)"
if [ "$ACTION" = uninstall ]; then
    say "uninstalling role $ROLE${ROOT:+ from $ROOT}$mode"
    uninstall_role
    if [ "$CHANGES" -eq 0 ]; then
        say "nothing to remove: role $ROLE is not installed"
    elif [ "$DRY_RUN" -eq 1 ]; then
        say "$CHANGES change(s) would be made"
    else
        say "$CHANGES change(s) made; role $ROLE is uninstalled"
    fi
    exit 0
fi
say "installing role $ROLE from $SRC${ROOT:+ into $ROOT}$mode"
install_debs
install_users
install_venv
install_config
install_units
enable_units
provision_broker
manager_certs
start_units
if [ "$CHANGES" -eq 0 ]; then
    say "nothing to change: role $ROLE is installed"
elif [ "$DRY_RUN" -eq 1 ]; then
    say "$CHANGES change(s) would be made"
else
    say "$CHANGES change(s) made; check with: systemctl status ${units[*]}"
fi
