#include <unistd.h>
#include "wenv_native.h"
long wenv_page_size(void) { return sysconf(_SC_PAGESIZE); }
