# Sourced by scripts/e2e and scripts/boot-wave: putting programs into an image module's tree.

# copy_libraries FILE TREE: every library ldd lists for FILE, at its own path below TREE.
copy_libraries() {
    local file="$1" tree="$2" lib
    if ldd "$file" >/dev/null 2>&1; then
        for lib in $(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
            [ -e "$tree$lib" ] || { mkdir -p "$tree$(dirname "$lib")" && cp -L "$lib" "$tree$lib"; }
        done
    fi
}

# copy_program FILE TREE: FILE and its libraries, at their own paths below TREE.
copy_program() {
    mkdir -p "$2$(dirname "$1")" && cp -L "$1" "$2$1" && copy_libraries "$1" "$2"
}

# busybox_tree TREE: static busybox in TREE with every applet as a link to it.
busybox_tree() {
    local applet
    copy_program /bin/busybox "$1"
    for applet in $(/bin/busybox --list-full); do
        [ -e "$1/$applet" ] || ln -s /bin/busybox "$1/$applet"
    done
}
