import ImageService

/// The initrd's `/init` (boot step 4): mounts the kernel file systems, reads the image server and
/// image from the kernel command line (`ql.server=HOST[:PORT] ql.image=NAME`), fetches the image
/// with ql-mcast-client into the union root, and drops to a shell with the reason on failure.
/// Bringing up the boot NIC and switching to `/sbin/init.qlustar` belong to the provisioning
/// issue (#6), which extends this script.
enum InitScript {
    static func text(_ image: ImageName) -> String {
        """
        #!/bin/sh
        # Qlustar initrd /init for image '\(image)' (written by qlustar-image).
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mkdir -p /var/log/qlustar
        server=""
        image="\(image)"
        for word in $(cat /proc/cmdline); do
            case "$word" in
                ql.server=*) server="${word#ql.server=}" ;;
                ql.image=*) image="${word#ql.image=}" ;;
            esac
        done
        if [ -z "$server" ]; then
            echo "init: no ql.server= on the kernel command line; cannot fetch the node image" >/dev/console
            exec /bin/sh
        fi
        if ! /bin/ql-mcast-client --server "$server" --image "$image" --output /tmp/"$image".img --union / --mount --root /; then
            echo "init: fetching image '$image' from $server failed (see /var/log/qlustar/ql-mcast-client.log)" >/dev/console
            exec /bin/sh
        fi
        echo "init: image '$image' verified and mounted in /union" >/dev/console
        exec /bin/sh

        """
    }
}
