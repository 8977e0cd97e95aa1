/* A UDP echo client in the style of the classic textbook examples (Stevens, UNP 8.5):
 * socket, then for each message sendto the server and recvfrom its answer.
 *
 * usage: udp_client [HOST [PORT [MESSAGE...]]]
 *   HOST     the server's IPv4 address; default: $TRACER_SERVER
 *   PORT     default 9000
 *   MESSAGE  default "hello, udp"
 * It prints one line per datagram on stdout, unbuffered.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
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
    const char *host = argc > 1 ? argv[1] : getenv("TRACER_SERVER");
    int port = argc > 2 ? atoi(argv[2]) : 9000;
    if (host == NULL) {
        fprintf(stderr, "usage: udp_client HOST [PORT [MESSAGE...]] (or set TRACER_SERVER)\n");
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
    int sockfd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sockfd < 0)
        die("socket");
    static const char *dflt[] = {"hello, udp"};
    const char **msgs = argc > 3 ? (const char **)argv + 3 : dflt;
    int nmsgs = argc > 3 ? argc - 3 : 1;
    for (int i = 0; i < nmsgs; i++) {
        size_t len = strlen(msgs[i]);
        if (sendto(sockfd, msgs[i], len, 0, (struct sockaddr *)&servaddr, sizeof servaddr) < 0)
            die("sendto");
        char buf[512];
        ssize_t n = recvfrom(sockfd, buf, sizeof buf, 0, NULL, NULL);
        if (n < 0)
            die("recvfrom");
        printf("pid %d: sent %zu bytes, received %zd bytes: %.*s\n", (int)getpid(), len, n, (int)n, buf);
    }
    close(sockfd);
    return 0;
}
