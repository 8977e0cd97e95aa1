/* A TCP "hello" server in the style of the classic textbook examples (Stevens, UNP 1.5):
 * socket, bind, listen, then for each client: accept, read one request, write
 * "hello, " and the request back, close.
 *
 * usage: tcp_server [-f] [-n COUNT] [PORT]
 *   -f        fork a child per client: the child serves it, the parent closes its copy
 *             of the connection and accepts the next one (UNP 4.8)
 *   -n COUNT  serve COUNT clients, then exit (default 1)
 *   PORT      default 7777
 * It prints one line per step on stdout, unbuffered, so a test can compare.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void serve(int connfd) {
    char buf[256], reply[300];
    ssize_t n = read(connfd, buf, sizeof buf);
    if (n < 0)
        die("read");
    int len = snprintf(reply, sizeof reply, "hello, %.*s", (int)n, buf);
    ssize_t w = write(connfd, reply, (size_t)len);
    if (w < 0)
        die("write");
    printf("pid %d: read %zd bytes, wrote %zd bytes on fd %d\n", (int)getpid(), n, w, connfd);
}

int main(int argc, char **argv) {
    int forking = 0, count = 1, port = 7777, opt;
    while ((opt = getopt(argc, argv, "fn:")) != -1) {
        if (opt == 'f')
            forking = 1;
        else if (opt == 'n')
            count = atoi(optarg);
        else
            return 2;
    }
    if (optind < argc)
        port = atoi(argv[optind]);
    setvbuf(stdout, NULL, _IONBF, 0);

    int listenfd = socket(AF_INET, SOCK_STREAM, 0);
    if (listenfd < 0)
        die("socket");
    int on = 1;
    setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in servaddr;
    memset(&servaddr, 0, sizeof servaddr);
    servaddr.sin_family = AF_INET;
    servaddr.sin_addr.s_addr = htonl(INADDR_ANY);
    servaddr.sin_port = htons((unsigned short)port);
    if (bind(listenfd, (struct sockaddr *)&servaddr, sizeof servaddr) < 0)
        die("bind");
    if (listen(listenfd, 8) < 0)
        die("listen");
    printf("pid %d: listening on port %d, fd %d\n", (int)getpid(), port, listenfd);

    for (int i = 0; i < count; i++) {
        struct sockaddr_in cliaddr;
        socklen_t clilen = sizeof cliaddr;
        int connfd = accept(listenfd, (struct sockaddr *)&cliaddr, &clilen);
        if (connfd < 0)
            die("accept");
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &cliaddr.sin_addr, ip, sizeof ip);
        printf("pid %d: accepted fd %d from %s:%d\n", (int)getpid(), connfd, ip, ntohs(cliaddr.sin_port));
        if (forking) {
            pid_t child = fork();
            if (child < 0)
                die("fork");
            if (child == 0) {
                close(listenfd);
                serve(connfd);
                close(connfd);
                exit(0);
            }
            printf("pid %d: forked child %d\n", (int)getpid(), (int)child);
            close(connfd);
        } else {
            serve(connfd);
            close(connfd);
        }
    }
    if (forking)
        while (wait(NULL) > 0)
            ;
    close(listenfd);
    return 0;
}
