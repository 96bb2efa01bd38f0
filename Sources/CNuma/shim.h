// libnuma (Debian libnuma-dev): place receive buffers on the NIC's NUMA node.
#include <numa.h>
