#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_mmap.h"

cp_status cp_file_map(const char *path, cp_mapped_file *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot open %s: %s",
                            path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cp_error_set(err, CP_EIO, "%s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int map_errno = errno;
    close(fd);
    if (size && map == MAP_FAILED)
        return cp_error_set(err, CP_EIO, "cannot map %s: %s", path, strerror(map_errno));
    out->data = map;
    out->size = size;
    return CP_OK;
}

void cp_file_unmap(cp_mapped_file *m)
{
    if (m->data) munmap(m->data, m->size);
    memset(m, 0, sizeof *m);
}
