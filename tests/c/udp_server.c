/* A UDP echo server in the style of the classic textbook examples (Stevens, UNP 8.3):
 * socket, bind, then recvfrom a datagram and sendto it back in upper case.
 *
 * usage: udp_server [-n COUNT] [PORT]
 *   -n COUNT  answer COUNT datagrams, then exit (default 1)
 *   PORT      default 9000
 * It prints one line per datagram on stdout, unbuffered.
 */
#include <arpa/inet.h>
#include <ctype.h>
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
    int count = 1, port = 9000, opt;
    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt == 'n')
            count = atoi(optarg);
        else
            return 2;
    }
    if (optind < argc)
        port = atoi(argv[optind]);
    setvbuf(stdout, NULL, _IONBF, 0);

    int sockfd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sockfd < 0)
        die("socket");
    struct sockaddr_in servaddr;
    memset(&servaddr, 0, sizeof servaddr);
    servaddr.sin_family = AF_INET;
    servaddr.sin_addr.s_addr = htonl(INADDR_ANY);
    servaddr.sin_port = htons((unsigned short)port);
    if (bind(sockfd, (struct sockaddr *)&servaddr, sizeof servaddr) < 0)
        die("bind");
    printf("pid %d: bound fd %d to port %d\n", (int)getpid(), sockfd, port);
    for (int i = 0; i < count; i++) {
        char buf[512];
        struct sockaddr_in cliaddr;
        socklen_t len = sizeof cliaddr;
        ssize_t n = recvfrom(sockfd, buf, sizeof buf, 0, (struct sockaddr *)&cliaddr, &len);
        if (n < 0)
            die("recvfrom");
        for (ssize_t k = 0; k < n; k++)
            buf[k] = (char)toupper((unsigned char)buf[k]);
        if (sendto(sockfd, buf, (size_t)n, 0, (struct sockaddr *)&cliaddr, len) < 0)
            die("sendto");
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &cliaddr.sin_addr, ip, sizeof ip);
        printf("pid %d: echoed %zd bytes to %s:%d\n", (int)getpid(), n, ip, ntohs(cliaddr.sin_port));
    }
    close(sockfd);
    return 0;
}
