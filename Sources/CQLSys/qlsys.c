#define _GNU_SOURCE
#include "qlsys.h"

#include <string.h>
#include <sys/socket.h>

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

int qlsys_gro_segment(const struct msghdr *msg) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm != NULL;
         cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
        if (cm->cmsg_level == QLSYS_SOL_UDP && cm->cmsg_type == QLSYS_UDP_GRO) {
            int v = 0;
            memcpy(&v, CMSG_DATA(cm), sizeof(v) < cm->cmsg_len ? sizeof(v) : cm->cmsg_len);
            return v;
        }
    }
    return 0;
}

size_t qlsys_gro_control_space(void) { return CMSG_SPACE(sizeof(int)); }
