import Platform

/// The initrd's `/init` (boot step 4): makes busybox's applets commands (when the initrd has
/// `/bin/busybox`), loads the kernel modules it carries (`lib/modules/*.ko`), brings up the
/// boot NIC (the one pxelinux booted from,
/// `BOOTIF=`; DHCP with busybox `udhcpc`, or `ip=ADDR::GW:MASK` from the kernel command line),
/// reads the image server and image (`ql.server=HOST[:PORT] ql.image=NAME`), runs
/// `ql-mcast-client --union` (multicast with unicast fallback, SHA-256 verified, the union root
/// mounted: image read-only, tmpfs for changes, the reserved chroot component), and switches
/// to `/sbin/init.qlustar` in the union. A failed fetch is retried (`ql.retries=N`, default 3,
/// each waiting up to `ql.server-timeout=S` seconds, default 60, for the server), DHCP in up to
/// `ql.dhcp-retries=N` rounds (default 5) — each pause doubling with random jitter, so a wave
/// that failed together does not return together; then the node drops to a shell with the
/// reason on the console. `ql.expect=N` (the nodes booted together)
/// lets the session start as soon as N nodes have asked instead of at the grouping window's end;
/// `ql.unicast` fetches the whole image over TCP instead of joining a multicast session.
///
/// Testable outside a boot: every command is found through `PATH`, every path hangs below
/// `$QL_ROOT` (empty at boot), `$QL_CMDLINE` replaces `/proc/cmdline`, `$QL_CONSOLE` the console
/// and `$QL_SHELL` the rescue shell, so a test runs it under a root prefix with stand-ins for
/// `switch_root`. Only as PID 1 does it set up the system (busybox's applets, `/proc`, `/sys`,
/// `/dev`, `lo`): at boot, and as a virtual node's init (`scripts/vnode`).
public enum InitScript {
    public static func text(_ image: ImageName) -> String {
        #"""
        #!/bin/sh
        # Qlustar initrd /init for image '\#(image)' (written by qlustar-image; boot step 4).
        R="${QL_ROOT:-}"
        PATH="${PATH:-/sbin:/bin:/usr/sbin:/usr/bin}"
        export PATH
        LOG="$R/var/log/qlustar/init.log"
        mkdir -p "$R/proc" "$R/sys" "$R/dev" "$R/run/qlustar" "$R/tmp" "$R/var/log/qlustar" "$R/etc/qlustar"
        say() {
            echo "init: $*" >> "$LOG"
            echo "init: $*" >> "${QL_CONSOLE:-/dev/console}" 2>/dev/null || echo "init: $*" >&2
        }
        rescue() {
            say "$*"
            say "dropping to a shell (log: /var/log/qlustar/init.log)"
            exec ${QL_SHELL:-sh}
        }
        # backoff N CAP: seconds to wait after the Nth failure (N ≥ 1): the bound doubles from 2
        # up to CAP, the wait is drawn from its upper half, to milliseconds — so a wave of nodes
        # that failed together does not come back together (Platform's Backoff, in shell).
        backoff() {
            b=2; n=1
            while [ "$n" -lt "$1" ] && [ "$b" -lt "$2" ]; do b=$((b * 2)); n=$((n + 1)); done
            [ "$b" -gt "$2" ] && b="$2"
            r="$(od -An -N2 -tu2 /dev/urandom 2>/dev/null | tr -d ' ')"
            ms=$((b * 500 + ${r:-$$} % (b * 500 + 1)))
            echo "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
        }
        # As PID 1 (at boot, or in a virtual node's pid namespace): the system's own set-up. A
        # test that runs this script under a root prefix is not PID 1 and leaves the host alone.
        if [ "$$" = 1 ]; then
            # busybox (static) in the initrd: its applets become the commands below (mount, ip,
            # udhcpc, insmod, switch_root…), as links beside the files the initrd already has.
            if [ -x /bin/busybox ]; then
                /bin/busybox mkdir -p /sbin /usr/bin /usr/sbin && /bin/busybox --install -s
            fi
            mount -t proc proc "$R/proc"
            mount -t sysfs sysfs "$R/sys"
            mount -t devtmpfs devtmpfs "$R/dev" 2>/dev/null
            # Loopback first, as every system has it (our tools no longer need it: they start
            # programs with posix_spawn, not Foundation's Process, which hung without it).
            ip link set lo up
        fi
        cmdline="$(cat "${QL_CMDLINE:-$R/proc/cmdline}")"
        server=""; image="\#(image)"; retries=3; wait=60; bootif=""; ipconf="dhcp"; debug=""; expect=""; dhcp_rounds=5; unicast=""
        for word in $cmdline; do
            case "$word" in
                ql.server=*) server="${word#ql.server=}" ;;
                ql.image=*) image="${word#ql.image=}" ;;
                ql.retries=*) retries="${word#ql.retries=}" ;;
                ql.dhcp-retries=*) dhcp_rounds="${word#ql.dhcp-retries=}" ;;
                ql.unicast) unicast="--unicast" ;;
                ql.server-timeout=*) wait="${word#ql.server-timeout=}" ;;
                ql.expect=*)
                    case "${word#ql.expect=}" in
                        ""|*[!0-9]*) say "ignoring $word: not a number of nodes" ;;
                        *) expect="--expect ${word#ql.expect=}" ;;
                    esac ;;
                BOOTIF=*) bootif="$(echo "${word#BOOTIF=}" | cut -c4- | tr '-' ':' | tr 'A-F' 'a-f')" ;;
                ip=*) ipconf="${word#ip=}" ;;
                debug) set -x; debug=1 ;;
            esac
        done
        # debug: the logs of this boot stage on the console as they grow.
        [ -n "$debug" ] && [ "$$" = 1 ] && { tail -F "$LOG" "$R/var/log/qlustar/ql-mcast-client.log" >> "${QL_CONSOLE:-/dev/console}" 2>&1 & }
        say "image '$image' from '${server:-?}', boot NIC ${bootif:-first}, network $ipconf"
        # The kernel modules the initrd carries (lib/modules/*.ko: the boot NIC's driver, loop,
        # squashfs, overlay), in name order; one built into the kernel is simply already there.
        loaded=""
        for module in "$R"/lib/modules/*.ko; do
            [ -f "$module" ] || continue
            name="${module##*/}"; name="${name%.ko}"
            if insmod "$module" >> "$LOG" 2>&1; then loaded="$loaded $name"; else say "module $name not loaded (built in, or see $LOG)"; fi
        done
        [ -n "$loaded" ] && say "modules loaded:$loaded"
        [ -n "$server" ] || rescue "no ql.server= on the kernel command line: cannot fetch the node image"

        # The boot NIC: the one whose MAC pxelinux passed (BOOTIF), else the first that is not lo.
        nic=""
        sysfs="$R/sys"
        [ -d "$sysfs/class/net" ] || sysfs=/sys
        for dev in "$sysfs"/class/net/*; do
            name="${dev##*/}"
            [ "$name" = lo ] && continue
            if [ -z "$bootif" ] || [ "$(cat "$dev/address" 2>/dev/null)" = "$bootif" ]; then nic="$name"; break; fi
        done
        [ -n "$nic" ] || rescue "no network interface${bootif:+ with MAC $bootif}"
        ip link set dev "$nic" up || rescue "cannot bring up $nic"
        case "$ipconf" in
            dhcp|"")
                # busybox udhcpc calls this script with the lease in its environment.
                cat > "$R/run/qlustar/udhcpc.script" <<'SCRIPT'
        #!/bin/sh
        case "$1" in
            bound|renew)
                ip addr flush dev "$interface"
                ip addr add "$ip/${mask:-24}" dev "$interface"
                [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
                [ -n "$hostname" ] && hostname "$hostname"
                echo "$ip" > "$QL_LEASE" ;;
        esac
        exit 0
        SCRIPT
                chmod 0755 "$R/run/qlustar/udhcpc.script"
                # Rounds of 3 requests 2 s apart; between rounds a wait with jitter (backoff).
                round=1
                until QL_LEASE="$R/run/qlustar/address" udhcpc -i "$nic" -n -q -t 3 -T 2 -s "$R/run/qlustar/udhcpc.script" >> "$LOG" 2>&1; do
                    [ "$round" -ge "$dhcp_rounds" ] && rescue "no DHCP answer on $nic after $round rounds (is this node registered? qluman node add … --mac $bootif)"
                    pause="$(backoff "$round" 16)"
                    say "no DHCP answer on $nic (round $round of $dhcp_rounds); again in $pause s"
                    sleep "$pause"
                    round=$((round + 1))
                done
                say "$nic: $(cat "$R/run/qlustar/address") by DHCP" ;;
            *)
                # ip=ADDRESS::GATEWAY:NETMASK (the kernel's format; the rest ignored)
                address="$(echo "$ipconf" | cut -d: -f1)"; gateway="$(echo "$ipconf" | cut -d: -f3)"; mask="$(echo "$ipconf" | cut -d: -f4)"
                ip addr add "$address/${mask:-24}" dev "$nic" || rescue "cannot set $address on $nic"
                [ -n "$gateway" ] && ip route replace default via "$gateway" dev "$nic"
                say "$nic: $address (ip= on the kernel command line)" ;;
        esac

        ca=""
        [ -f "$R/etc/qlustar/ssl/ca.crt" ] && ca="--ca $R/etc/qlustar/ssl/ca.crt"
        # The image's own tmpfs, on huge pages where the kernel has them: writing the image then
        # faults once per 2 MiB instead of once per 4 KiB page (docs/PROVISIONING.md); else a
        # plain tmpfs, else the initrd's own.
        images="$R/run/qlustar/image"
        mkdir -p "$images"
        if [ "$$" = 1 ]; then
            mount -t tmpfs -o huge=within_size,mode=0700 qlimage "$images" 2>/dev/null \
                || mount -t tmpfs -o mode=0700 qlimage "$images" 2>/dev/null \
                || say "no tmpfs for the image: it goes to the initrd's own file system"
        fi
        attempt=1
        while :; do
            ql-mcast-client --server "$server" --image "$image" --output "$images/$image.img" --union "$R" --mount \
                --root "$R" --server-timeout "$wait" $ca $expect $unicast >> "$LOG" 2>&1 && break
            status=$?
            [ "$attempt" -ge "$retries" ] && rescue "fetching image '$image' from $server failed $attempt times (last exit status $status; see /var/log/qlustar/ql-mcast-client.log)"
            pause="$(backoff "$attempt" 32)"
            say "fetching image '$image' failed (exit status $status); retry $attempt of $retries in $pause s"
            sleep "$pause"
            attempt=$((attempt + 1))
        done
        say "image '$image' verified; union root in /union (image, rw, chroot)"
        # The boot's logs (this script's, the client's) stay where admins look on the running node.
        mkdir -p "$R/union/root/var/log/qlustar" && cp "$R"/var/log/qlustar/*.log "$R/union/root/var/log/qlustar/"
        [ -x "$R/union/root/sbin/init.qlustar" ] || rescue "the image has no /sbin/init.qlustar"
        exec switch_root "$R/union/root" /sbin/init.qlustar

        """#
    }
}
