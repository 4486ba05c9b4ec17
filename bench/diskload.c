/*
 * Disk load: writes to a file at a steady rate, the way the log writer writes payloads, so that a probe can show
 * what disk writes alone (no Tollgate in the loop) do to the other processes of the machine.
 *
 *   build/rel/bench/diskload FILE SECONDS MB_PER_S [WRITE_KIB [buffered]]
 *
 * Appends WRITE_KIB (default 256) blocks of bytes to FILE with O_DIRECT (or through the page cache with "buffered",
 * each block's writeback started at once with sync_file_range: left to the kernel, the dirty pages of a short run are
 * dropped unwritten when the file is removed), paced so that MB_PER_S is offered, for SECONDS; starts again from the
 * file's start every GiB, so the file stays bounded; removes FILE and prints what it wrote. Used by bench/probe.sh
 * (DISK_LOAD). Bounded in time and space; passes or fails nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WRAP (1L << 30)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE SECONDS MB_PER_S [WRITE_KIB [buffered]]\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[2]), rate = atof(argv[3]) * 1e6;
    size_t size = (argc > 4 ? strtoul(argv[4], NULL, 10) : 256) << 10;
    int direct = !(argc > 5 && strcmp(argv[5], "buffered") == 0);
    if (rate <= 0 || seconds <= 0 || seconds > 3600 || size == 0 || size > (64u << 20)) {
        fprintf(stderr, "diskload: rate and seconds must be positive (seconds <= 3600), WRITE_KIB 1..65536\n");
        return 2;
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
    char *block = NULL;
    if (fd < 0 || posix_memalign((void **)&block, 4096, size) != 0) {
        fprintf(stderr, "diskload: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    memset(block, 'x', size);
    double start = now(), interval = (double)size / rate;
    long writes = 0;
    off_t off = 0;
    for (;;) {
        double t = now();
        if (t - start >= seconds)
            break;
        double due = start + (double)writes * interval;
        if (t < due) {
            double wait = due - t;
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        if (pwrite(fd, block, size, off) != (ssize_t)size) {
            fprintf(stderr, "diskload: write: %s\n", strerror(errno));
            break;
        }
        if (!direct)
            sync_file_range(fd, off, (off_t)size, SYNC_FILE_RANGE_WRITE);
        writes++;
        off += (off_t)size;
        if (off >= WRAP)
            off = 0;
    }
    double took = now() - start;
    printf("diskload: %ld writes of %zu KiB (%s), %.1f MB/s\n", writes, size >> 10, direct ? "O_DIRECT" : "buffered",
           (double)writes * (double)size / took / 1e6);
    close(fd);
    unlink(argv[1]);
    free(block);
    return 0;
}
