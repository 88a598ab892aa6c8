// glibc's mallinfo2(), for the heap bytes a live guest instance holds (RSS misses memory malloc reuses).
#include <malloc.h>
