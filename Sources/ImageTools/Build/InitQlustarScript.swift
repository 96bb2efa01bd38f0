/// `/sbin/init.qlustar` in every image (boot steps 5–6), started by the initrd's `/init` in the
/// union root: stops at a shell first when the kernel command line says `early-shell`; starts
/// `systemd-udevd` and triggers it so every driver loads; runs `qluman-execd --configure`
/// (the node's configuration from qlumand); initialises local disks when a disk configuration
/// arrived (`qluman-execd --init-disks`); runs `qluman-execd --run-initd` (the Root FS Customization scripts); then execs the
/// image's `init` (systemd). `debug` traces every step. Logs: /var/log/qlustar/init.qlustar.log.
///
/// Testable outside a boot like `/init`: commands through `PATH`, paths below `$QL_ROOT`,
/// `$QL_CMDLINE` for `/proc/cmdline`, `$QL_CONSOLE` for the console, `$QL_SHELL` for the early
/// shell, `$QL_INIT` for `/sbin/init`; it sets up `/proc`, `/sys`, `/dev` and `/run` only as PID 1.
public enum InitQlustarScript {
    public static let path = "/sbin/init.qlustar"

    public static let text = #"""
        #!/bin/sh
        # Qlustar /sbin/init.qlustar (written by qlustar-image; boot steps 5 and 6).
        R="${QL_ROOT:-}"
        PATH="${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}"
        export PATH
        LOG="$R/var/log/qlustar/init.qlustar.log"
        mkdir -p "$R/var/log/qlustar" "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/tmp"
        say() {
            echo "$(date +%H:%M:%S) init.qlustar: $*" >> "$LOG"
            echo "init.qlustar: $*" >> "${QL_CONSOLE:-/dev/console}" 2>/dev/null || echo "init.qlustar: $*" >&2
        }
        # As PID 1 (switch_root made it so): the system's own set-up; a test is not PID 1.
        if [ "$$" = 1 ]; then
            [ -r /proc/cmdline ] || mount -t proc proc /proc
            [ -d /sys/class ] || mount -t sysfs sysfs /sys
            [ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
            mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run
            # Loopback, as every system has it (services talk to 127.0.0.1).
            ip link set lo up 2>/dev/null
        fi
        cmdline="$(cat "${QL_CMDLINE:-/proc/cmdline}")"
        # HOST[:PORT],HOST[:PORT] → HOST,HOST
        hosts() { out=""; for h in $(echo "$1" | tr ',' ' '); do out="${out:+$out,}${h%%:*}"; done; echo "$out"; }
        server=""; early=""; debug=""
        for word in $cmdline; do
            case "$word" in
                qluman.server=*) server="${word#qluman.server=}" ;;
                # ql-mcastd on each head (HOST[:PORT],…): qlumand runs on the same hosts, its own port.
                ql.server=*) [ -n "$server" ] || server="$(hosts "${word#ql.server=}")" ;;
                early-shell) early=1 ;;
                debug) debug="--debug" ;;
            esac
        done
        [ -n "$debug" ] && set -x
        say "starting (server ${server:-from the kernel command line}${early:+, early-shell}${debug:+, debug})"
        if [ -n "$early" ]; then
            say "early-shell: stopping here; leave the shell to continue booting"
            ${QL_SHELL:-sh}
        fi

        # Step 5: all drivers (udev), then the node's configuration from qlumand.
        udevd="$(command -v systemd-udevd || echo /lib/systemd/systemd-udevd)"
        if [ -x "$udevd" ] || command -v systemd-udevd >/dev/null; then
            "$udevd" --daemon >> "$LOG" 2>&1 && udevadm trigger --action=add >> "$LOG" 2>&1 \
                && udevadm settle --timeout=30 >> "$LOG" 2>&1 || say "udev: drivers may be missing (see $LOG)"
            udevadm control --exit >> "$LOG" 2>&1
        else
            say "udev: no systemd-udevd in the image; drivers load later"
        fi
        if qluman-execd --configure --root "${R:-/}" ${server:+--server "$server"} $debug >> "$LOG" 2>&1; then
            say "configured by qlumand"
        else
            say "qluman-execd --configure failed (exit status $?): booting without the node's configuration; see /var/log/qlustar/qluman-execd.log"
        fi
        # Local disks before the customization scripts, and only those the configuration names.
        if [ -f "$R/etc/qlustar/options.d/disk-config" ]; then
            qluman-execd --init-disks --root "${R:-/}" $debug >> "$LOG" 2>&1 || say "some local disks failed (see /var/log/qlustar/qluman-execd.log)"
        fi
        qluman-execd --run-initd --root "${R:-/}" $debug >> "$LOG" 2>&1 || say "some init.d scripts failed (see /var/log/qlustar/init.d/)"

        # Step 6: the image's own init (systemd).
        # By path: busybox's sh would run its own init applet for a bare "init".
        say "handing over to init"
        exec "${QL_INIT:-/sbin/init}"

        """#
}
