// The few socket facilities Glibc's Swift overlay does not expose: batched send/receive
// (struct mmsghdr is behind _GNU_SOURCE), control-message (CMSG_*) macros, and the UDP
// segmentation offload constants. Everything else goes through Glibc from Swift.
#ifndef QLSYS_H
#define QLSYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Same layout as the kernel's struct mmsghdr.
struct qlsys_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

#define QLSYS_SOL_UDP 17
#define QLSYS_UDP_SEGMENT 103
#define QLSYS_UDP_GRO 104
/// Space for one control message carrying an int (GSO size or GRO size).
#define QLSYS_CMSG_INT_SPACE 32

/// sendmmsg(2); returns the number sent or -1 with errno set.
int qlsys_sendmmsg(int fd, struct qlsys_mmsghdr *msgs, unsigned int n, int flags);
/// recvmmsg(2) without a timeout; returns the number received or -1 with errno set.
int qlsys_recvmmsg(int fd, struct qlsys_mmsghdr *msgs, unsigned int n, int flags);

/// ppoll(2) for POLLIN on one descriptor with a nanosecond timeout: 1 readable, 0 timeout, -1 error.
int qlsys_wait_readable(int fd, uint64_t timeout_ns);

/// Writes a UDP_SEGMENT control message (GSO segment size) into `buf` (QLSYS_CMSG_INT_SPACE
/// bytes) and points `msg` at it.
void qlsys_set_gso_segment(struct msghdr *msg, void *buf, uint16_t segment);

#define QLSYS_SO_RXQ_OVFL 40

/// Reads the control messages of a received message: the GRO segment size (0 when the kernel
/// did not coalesce) and, if present, the socket's cumulative overflow-drop counter
/// (SO_RXQ_OVFL; `*drops` is left unchanged when absent).
int qlsys_gro_segment(const struct msghdr *msg, uint32_t *drops);

/// memfd_create(2) with MFD_CLOEXEC | MFD_ALLOW_SEALING; the descriptor or -1 with errno set.
int qlsys_memfd(const char *name);
/// Seals a memfd against every change of size and content (F_SEAL_SHRINK | GROW | WRITE | SEAL).
int qlsys_seal_all(int fd);

/// Fill of the socket's receive queue in percent of its buffer (SO_MEMINFO), or -1.
int qlsys_receive_queue_percent(int fd);

/// Size of the control buffer to pass with recvmsg to receive UDP_GRO and SO_RXQ_OVFL.
size_t qlsys_gro_control_space(void);

/// O_PATH (behind _GNU_SOURCE in glibc's headers): a descriptor that names a place, for *at calls.
#define QLSYS_O_PATH 010000000

/// openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: `path` is resolved as if `root_fd`
/// were "/" (absolute symlinks and ".." cannot leave it). Returns a descriptor or -1 with errno.
int qlsys_open_in_root(int root_fd, const char *path, int flags, unsigned int mode);

/// pipe2(fds, O_CLOEXEC) (behind _GNU_SOURCE in glibc's headers).
int qlsys_pipe_cloexec(int fds[2]);

/// Starts a program with posix_spawn (vfork-fast, no run loop, no threads). `argv` and `envp`
/// are NULL-terminated; `path` with a '/' is run as it is, else searched on this process' PATH.
/// Standard descriptors: a descriptor >= 0 is duplicated onto 0/1/2, QLSYS_SPAWN_NULL opens
/// /dev/null, QLSYS_SPAWN_INHERIT keeps ours; no other descriptor is passed on. In `dir` when not NULL; in a process group of its
/// own when `new_group`; every signal at its default and none blocked (whatever this process
/// ignores or blocks). Returns 0 and sets *pid, or an errno value (exec failures included).
#define QLSYS_SPAWN_NULL (-1)
#define QLSYS_SPAWN_INHERIT (-2)
int qlsys_spawn(int *pid, const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                const char *dir, int new_group);

/// Names the calling thread (prctl(PR_SET_NAME): the kernel keeps 15 bytes); 0 or -1 with errno.
int qlsys_name_this_thread(const char *name);

#ifdef __cplusplus
}
#endif

#endif
