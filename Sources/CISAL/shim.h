// Intel ISA-L (Debian libisal-dev): the reference Reed–Solomon codec the benchmark compares with.
#include <isa-l/erasure_code.h>
