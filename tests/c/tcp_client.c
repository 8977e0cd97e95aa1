/* A TCP "hello" client in the style of the classic textbook examples (Stevens, UNP 1.2):
 * socket, connect, write a request, read the reply until the server closes, close.
 *
 * usage: tcp_client [-b] [-c] [-d MS] [HOST [PORT]]
 *   HOST   the server's IPv4 address; default: $TRACER_SERVER
 *   PORT   default 7777
 *   -b     non-blocking connect: O_NONBLOCK, connect() fails with EINPROGRESS,
 *          poll() until writable, getsockopt(SO_ERROR), then blocking again
 *   -c     crash (write through a NULL pointer) right after connecting
 *   -d MS  wait MS milliseconds after connecting before writing the request
 * It prints one line per step on stdout, unbuffered, so a test can compare.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    int nonblocking = 0, crash = 0, delay_ms = 0, opt;
    while ((opt = getopt(argc, argv, "bcd:")) != -1) {
        if (opt == 'b')
            nonblocking = 1;
        else if (opt == 'c')
            crash = 1;
        else if (opt == 'd')
            delay_ms = atoi(optarg);
        else
            return 2;
    }
    const char *host = optind < argc ? argv[optind] : getenv("TRACER_SERVER");
    int port = optind + 1 < argc ? atoi(argv[optind + 1]) : 7777;
    if (host == NULL) {
        fprintf(stderr, "usage: tcp_client [-b] [-c] [-d MS] HOST [PORT] (or set TRACER_SERVER)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);

    struct sockaddr_in servaddr;
    memset(&servaddr, 0, sizeof servaddr);
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &servaddr.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", host);
        return 2;
    }
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);
    if (sockfd < 0)
        die("socket");
    if (nonblocking) {
        int flags = fcntl(sockfd, F_GETFL, 0);
        fcntl(sockfd, F_SETFL, flags | O_NONBLOCK);
        if (connect(sockfd, (struct sockaddr *)&servaddr, sizeof servaddr) == 0) {
            printf("pid %d: connected at once\n", (int)getpid());
        } else if (errno == EINPROGRESS) {
            printf("pid %d: connect: EINPROGRESS\n", (int)getpid());
            struct pollfd p = {.fd = sockfd, .events = POLLOUT};
            if (poll(&p, 1, 5000) != 1)
                die("poll");
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(sockfd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                errno = err;
                die("connect");
            }
        } else {
            die("connect");
        }
        fcntl(sockfd, F_SETFL, flags);
    } else if (connect(sockfd, (struct sockaddr *)&servaddr, sizeof servaddr) < 0) {
        die("connect");
    }
    printf("pid %d: connected fd %d to %s:%d\n", (int)getpid(), sockfd, host, port);
    if (crash) {
        volatile int *nothing = NULL;
        *nothing = 1;
    }
    if (delay_ms > 0) {
        struct timespec pause = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    const char *request = "client\n";
    ssize_t w = write(sockfd, request, strlen(request));
    if (w < 0)
        die("write");
    printf("pid %d: wrote %zd bytes\n", (int)getpid(), w);
    char buf[256];
    ssize_t n, total = 0;
    while ((n = read(sockfd, buf, sizeof buf)) > 0) {
        printf("pid %d: read %zd bytes: %.*s", (int)getpid(), n, (int)n, buf);
        total += n;
    }
    if (n < 0)
        die("read");
    printf("pid %d: read 0 bytes (end of stream) after %zd\n", (int)getpid(), total);
    close(sockfd);
    return 0;
}
