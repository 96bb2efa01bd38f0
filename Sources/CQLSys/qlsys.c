#define _GNU_SOURCE
#include "qlsys.h"

#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>

_Static_assert(sizeof(struct qlsys_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(QLSYS_CMSG_INT_SPACE >= CMSG_SPACE(sizeof(int)), "cmsg space");

int qlsys_sendmmsg(int fd, struct qlsys_mmsghdr *msgs, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
}

int qlsys_recvmmsg(int fd, struct qlsys_mmsghdr *msgs, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, n, flags, NULL);
}

void qlsys_set_gso_segment(struct msghdr *msg, void *buf, uint16_t segment) {
    memset(buf, 0, QLSYS_CMSG_INT_SPACE);
    msg->msg_control = buf;
    msg->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
    cm->cmsg_level = QLSYS_SOL_UDP;
    cm->cmsg_type = QLSYS_UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cm), &segment, sizeof(segment));
}

int qlsys_gro_segment(const struct msghdr *msg, uint32_t *drops) {
    int segment = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level == QLSYS_SOL_UDP && cm->cmsg_type == QLSYS_UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&segment, CMSG_DATA(cm), sizeof(int));
        } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == QLSYS_SO_RXQ_OVFL &&
                   cm->cmsg_len >= CMSG_LEN(sizeof(uint32_t)) && drops != NULL) {
            memcpy(drops, CMSG_DATA(cm), sizeof(uint32_t));
        }
    }
    return segment;
}

size_t qlsys_gro_control_space(void) { return CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t)); }

int qlsys_wait_readable(int fd, uint64_t timeout_ns) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u), .tv_nsec = (long)(timeout_ns % 1000000000u)};
    return ppoll(&p, 1, &ts, NULL);
}

int qlsys_receive_queue_percent(int fd) {
    uint32_t info[16] = {0};
    socklen_t len = sizeof(info);
    if (getsockopt(fd, SOL_SOCKET, 55 /* SO_MEMINFO */, info, &len) != 0 || len < 2 * sizeof(uint32_t)) return -1;
    if (info[1] == 0) return 0;  // [0] rmem_alloc, [1] rcvbuf
    uint64_t pct = (uint64_t)info[0] * 100u / info[1];
    return pct > 100 ? 100 : (int)pct;
}

int qlsys_open_in_root(int root_fd, const char *path, int flags, unsigned int mode) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
}

int qlsys_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int qlsys_seal_all(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}

int qlsys_spawn(int *pid, const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                const char *dir, int new_group) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    const int fds[3] = {in_fd, out_fd, err_fd};
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (fds[i] >= 0) {
            rc = posix_spawn_file_actions_adddup2(&actions, fds[i], i);
        } else if (fds[i] == QLSYS_SPAWN_NULL) {
            rc = posix_spawn_file_actions_addopen(&actions, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
        }
    }
    // Nothing else of ours reaches the child: a descriptor someone opened without O_CLOEXEC
    // (a library's pipe, the caller's own stdout pipe) would keep a reader waiting for a
    // grandchild the program left behind.
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0 && dir != NULL) rc = posix_spawn_file_actions_addchdir_np(&actions, dir);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (new_group ? POSIX_SPAWN_SETPGROUP : 0);
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, flags);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0 && new_group) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) {
        pid_t child = 0;
        rc = strchr(path, '/') ? posix_spawn(&child, path, &actions, &attr, argv, envp)
                               : posix_spawnp(&child, path, &actions, &attr, argv, envp);
        if (rc == 0) *pid = (int)child;
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int qlsys_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int qlsys_name_this_thread(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
