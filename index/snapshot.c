/* Snapshot reference counting (the rest of the file belongs to the storage loader). */
#include "index_internal.h"
